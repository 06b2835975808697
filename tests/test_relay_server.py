"""The relay server, in process on port 0 (plus one real subprocess for SIGTERM), driven by
``websockets`` clients and raw sockets. Every test runs its own event loop via asyncio.run."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ostracon.core.errors import ValidationError
from ostracon.core.protocol import relay as P
from ostracon.relay.mailbox import FRAME_OVERHEAD_BYTES, MemoryMailbox
from ostracon.relay.server import Relay, RelayConfig, TokenBucket
from relay_clients import DEADLINE, ROOM, ROOM2, Client, run

REPO = Path(__file__).resolve().parents[1]


async def http(relay, method, path, body=b"", headers=()):
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    writer.write(head.encode() + body)
    data = await asyncio.wait_for(reader.read(), DEADLINE)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, hdrs, body


# --- forwarding ------------------------------------------------------------------------------

def test_frames_go_to_the_other_members_only_and_rooms_are_isolated():
    async def main():
        async with Relay(RelayConfig()) as relay:
            a, b, c = [await Client.join(relay, since=0) for _ in range(3)]
            d, e = [await Client.join(relay, ROOM2, since=0) for _ in range(2)]
            for x in (a, b, c, d, e):
                await x.caught_up()
            await a.publish(b"m1")
            assert await b.next_data() == P.Frame(1, b"m1")
            assert await c.next_data() == P.Frame(1, b"m1")
            assert await a.next_data() == P.Ack(1)
            await b.publish(b"m2")
            # a's next data message is b's frame: its own m1 was never echoed to it.
            assert await a.next_data() == P.Frame(2, b"m2")
            assert await b.next_data() == P.Ack(2)
            # Another room: separate cursors, and none of ROOM's frames leak into it.
            await e.publish(b"other room")
            assert await d.next_data() == P.Frame(1, b"other room")
            assert await e.next_data() == P.Ack(1)
            # Ephemeral: forwarded, not stored, no cursor.
            await c.ws.send(P.encode_ephemeral(b"presence"))
            assert await a.next_data() == P.Ephemeral(b"presence")
            assert await b.next_data() == P.Ephemeral(b"presence")
            late = await Client.join(relay, since=0)
            msgs = await late.caught_up()
            assert [m for m in msgs if isinstance(m, P.Frame)] == [P.Frame(1, b"m1"), P.Frame(2, b"m2")]
            assert relay.mailbox.stats().frames == 3
            for x in (a, b, c, d, e, late):
                await x.close()
    run(main())


def test_peers_count_follows_membership():
    async def main():
        async with Relay() as relay:
            a = await Client.join(relay)
            await a.until(lambda m: m == P.Peers(1))
            b = await Client.join(relay)
            w = await b.next()
            assert isinstance(w, P.Welcome) and w.members == 2
            await a.until(lambda m: m == P.Peers(2))
            await b.close()
            await a.until(lambda m: m == P.Peers(1))
            await a.close()
    run(main())


# --- mailbox catch-up ------------------------------------------------------------------------

def test_late_joiner_catches_up_from_its_cursor():
    async def main():
        async with Relay() as relay:
            a = await Client.join(relay, since=0)
            await a.caught_up()
            for i in range(1, 6):
                await a.publish(b"f%d" % i)
                assert await a.next_data() == P.Ack(i)
            await a.close()
            b = await Client.join(relay, since=2)
            msgs = await b.caught_up()
            welcome = msgs[0]
            assert isinstance(welcome, P.Welcome) and (welcome.head, welcome.oldest) == (5, 1)
            assert [m for m in msgs if isinstance(m, P.Frame)] == [P.Frame(i, b"f%d" % i) for i in (3, 4, 5)]
            assert msgs[-1] == P.CaughtUp(5)
            # Live only: no replay at all.
            c = await Client.join(relay)
            msgs = await c.caught_up()
            assert not [m for m in msgs if isinstance(m, P.Frame)] and msgs[-1] == P.CaughtUp(5)
            # Same epoch: no gap. Another epoch (relay lost its mailbox): gap, then everything.
            d = await Client.join(relay, since=4, epoch=welcome.epoch)
            msgs = await d.caught_up()
            assert not [m for m in msgs if isinstance(m, P.Gap)]
            assert [m.cursor for m in msgs if isinstance(m, P.Frame)] == [5]
            other = "0" * 16 if welcome.epoch != "0" * 16 else "1" * 16
            e = await Client.join(relay, since=4, epoch=other)
            msgs = await e.caught_up()
            assert P.Gap("epoch", 4, 1, 5) in msgs
            assert [m.cursor for m in msgs if isinstance(m, P.Frame)] == [1, 2, 3, 4, 5]
            # A cursor from the future (relay restarted with less data): gap too.
            f = await Client.join(relay, since=9)
            msgs = await f.caught_up()
            assert P.Gap("ahead", 9, 1, 5) in msgs
            for x in (b, c, d, e, f):
                await x.close()
    run(main())


def test_pruned_cursor_gets_a_gap_message():
    async def main():
        mailbox = MemoryMailbox(max_room_bytes=1000 + 3 * FRAME_OVERHEAD_BYTES, max_total_bytes=10_000)
        async with Relay(RelayConfig(), mailbox) as relay:
            a = await Client.join(relay, since=0)
            await a.caught_up()
            for i in range(1, 11):
                await a.publish(bytes([i]) * 300)
                assert await a.next_data() == P.Ack(i)
            b = await Client.join(relay, since=2)
            msgs = await b.caught_up()
            assert P.Gap("pruned", 2, 8, 10) in msgs
            assert [m.cursor for m in msgs if isinstance(m, P.Frame)] == [8, 9, 10]
            await a.close()
            await b.close()
    run(main())


def test_a_flooding_writer_evicts_only_its_own_frames_and_readers_get_the_survivors():
    async def main():
        mailbox = MemoryMailbox(max_room_bytes=5 * (300 + FRAME_OVERHEAD_BYTES), max_total_bytes=10_000)
        # Two frames from another address, stored before this client floods the room.
        mailbox.append(ROOM, b"o" * 300, "198.51.100.7")
        mailbox.append(ROOM, b"p" * 300, "198.51.100.7")
        async with Relay(RelayConfig(), mailbox) as relay:
            a = await Client.join(relay, since=0)
            await a.caught_up()
            for i in range(3, 11):
                await a.publish(bytes([i]) * 300)
                assert await a.next_data() == P.Ack(i)
            b = await Client.join(relay, since=0)
            msgs = await b.caught_up()
            assert P.Gap("pruned", 0, 1, 10) in msgs
            assert [m.cursor for m in msgs if isinstance(m, P.Frame)] == [1, 2, 8, 9, 10]
            c = await Client.join(relay, since=1)  # behind the hole, past the first survivor
            msgs = await c.caught_up()
            assert P.Gap("pruned", 1, 1, 10) in msgs
            assert [m.cursor for m in msgs if isinstance(m, P.Frame)] == [2, 8, 9, 10]
            for x in (a, b, c):
                await x.close()
    run(main())


def test_joining_while_frames_flow_loses_and_duplicates_nothing():
    """Replay → live switch under concurrent appends: the joiner sees 1..N exactly once, in order."""
    async def main():
        n = 300
        async with Relay(RelayConfig(replay_page_frames=7)) as relay:
            a = await Client.join(relay, since=0)
            await a.caught_up()

            async def produce():
                for i in range(1, n + 1):
                    await a.publish(b"x%d" % i)
                    if i % 50 == 0:
                        await asyncio.sleep(0)

            async def drain_acks():
                await a.until(lambda m: m == P.Ack(n))

            prod = asyncio.create_task(produce())
            acks = asyncio.create_task(drain_acks())
            await asyncio.sleep(0)  # let some frames in before joining
            b = await Client.join(relay, since=0)
            got = []
            while not got or got[-1] != n:
                m = await b.next()
                if isinstance(m, P.Frame):
                    assert m.payload == b"x%d" % m.cursor
                    got.append(m.cursor)
            assert got == list(range(1, n + 1))
            await prod
            await acks
            await a.close()
            await b.close()
    run(main())


# --- pings, bad requests, random input (limits: test_relay_server_abuse.py) ----------------

def test_a_ping_is_answered_with_its_token_to_the_sender_only():
    async def main():
        async with Relay() as relay:
            a = await Client.join(relay)
            b = await Client.join(relay)
            await a.caught_up()
            await b.caught_up()
            await a.ws.send(P.encode_ping(b"tok"))
            assert (await a.until(lambda m: isinstance(m, P.Pong)))[-1] == P.Pong(b"tok")
            await b.ws.send(P.encode_ping(b"b"))
            assert (await b.until(lambda m: isinstance(m, P.Pong)))[-1] == P.Pong(b"b")
            assert relay.mailbox.stats().frames == 0
            await a.ws.send(b"\x03" + bytes(P.MAX_PING_TOKEN + 1))
            assert await a.close_code() == P.CLOSE_UNSUPPORTED
    run(main())


def test_bad_websocket_requests_get_http_errors():
    async def main():
        async with Relay() as relay:
            for path, status in ((f"/v1/room/{ROOM.upper()}", 400), ("/v1/room/abc", 400), ("/elsewhere", 404),
                                 (f"/v1/room/{ROOM}?since=-1", 400), (f"/v1/room/{ROOM}?since=x", 400),
                                 (f"/v1/room/{ROOM}?epoch=XYZ", 400),
                                 # Digits to str.isdigit() that int() refuses (²) or reads (٣):
                                 # a cursor is ASCII digits only.
                                 (f"/v1/room/{ROOM}?since=%C2%B2", 400), (f"/v1/room/{ROOM}?since=%D9%A3", 400)):
                with pytest.raises(InvalidStatus) as exc:
                    await connect(relay.url + path, open_timeout=DEADLINE)
                assert exc.value.response.status_code == status, path
            # A plain GET on the room endpoint explains itself.
            status, _, _ = await http(relay, "GET", P.room_path(ROOM))
            assert status == 426
    run(main())


def test_random_messages_do_not_crash_the_relay():
    seed = int(os.environ.get("OSTRACON_TEST_SEED", random.randrange(2**32)))
    rng = random.Random(seed)

    async def main():
        cfg = RelayConfig(max_frame_bytes=4096, rate_frames_per_s=None, rate_bytes_per_s=None, rate_bytes_burst=4096,
                          send_queue_bytes=64 * 1024)
        async with Relay(cfg) as relay:
            listener = await Client.join(relay, since=0)
            heard = []

            async def listen():
                try:
                    while True:
                        heard.append(await listener.next())
                except ConnectionClosed:
                    pass

            listening = asyncio.create_task(listen())

            async def fuzzer():
                c = await Client.join(relay)

                async def discard():  # a real peer reads; otherwise it never sees its close
                    try:
                        while True:
                            await c.ws.recv()
                    except ConnectionClosed:
                        pass
                return c, asyncio.create_task(discard())

            sent_ok = 0
            client, reading = await fuzzer()
            for _ in range(10_000):
                r = rng.random()
                if r < 0.05:
                    msg = "text"
                elif r < 0.1:
                    msg = bytes([rng.randrange(256)]) + rng.randbytes(rng.randrange(5000))
                else:
                    msg = bytes([rng.choice([P.C_PUBLISH, P.C_EPHEMERAL])]) + rng.randbytes(rng.randrange(1, 3000))
                if reading.done():  # the relay closed the previous one (as it should for bad input)
                    client, reading = await fuzzer()
                try:
                    await client.ws.send(msg)
                    if isinstance(msg, bytes) and msg[0] in (P.C_PUBLISH, P.C_EPHEMERAL) and len(msg) > 1:
                        sent_ok += 1
                except ConnectionClosed:
                    await reading
                await asyncio.sleep(0)  # let the relay keep up, as a real peer would
            await client.close()
            await reading
            status, _, body = await http(relay, "GET", "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
            # Still relaying: a fresh pair exchanges a frame.
            x = await Client.join(relay, ROOM2)
            y = await Client.join(relay, ROOM2)
            await x.caught_up()
            await y.caught_up()
            await x.publish(b"still alive")
            assert (await y.next_data()).payload == b"still alive"
            for c in (listener, x, y):
                await c.close()
            await listening
            assert sent_ok > 1000 and isinstance(heard[0], P.Welcome)
            assert relay.metrics.frames_in > 1000 and relay.metrics.drops["bad_message"] > 0

    try:
        run(main())
    except BaseException:
        print(f"seed={seed}")
        raise


# --- HTTP endpoints --------------------------------------------------------------------------

def test_healthz_and_metrics_count_traffic():
    async def main():
        async with Relay() as relay:
            status, hdrs, body = await http(relay, "GET", "/healthz")
            assert status == 200 and hdrs["content-type"] == "application/json"
            assert json.loads(body)["status"] == "ok"
            a = await Client.join(relay)
            b = await Client.join(relay)
            await a.caught_up()
            await b.caught_up()
            await a.publish(b"12345")
            await b.next_data()
            await a.ws.send(b"\x09")  # bad kind: a drop
            await a.close_code()
            status, _, body = await http(relay, "GET", "/metrics.json")
            m = json.loads(body)
            assert status == 200
            assert m["frames_in"] == 2 and m["bytes_in"] == 6 + 1
            assert m["frames_out"] == 1 and m["stored_frames"] == 1
            assert m["drops"]["bad_message"] == 1 and m["connections_total"] == 2
            assert m["mailbox"]["frames"] == 1 and m["mailbox"]["bytes"] == 5 + FRAME_OVERHEAD_BYTES
            status, hdrs, text = await http(relay, "GET", "/metrics")
            assert status == 200 and hdrs["content-type"].startswith("text/plain")
            text = text.decode()
            assert re.search(r"^ostracon_relay_frames_in_total 2$", text, re.M)
            assert re.search(r'^ostracon_relay_drops_total\{reason="bad_message"\} 1$', text, re.M)
            assert re.search(rf"^ostracon_relay_mailbox_bytes {5 + FRAME_OVERHEAD_BYTES}$", text, re.M)
            assert (await http(relay, "POST", "/healthz"))[0] == 405
            assert (await http(relay, "GET", "/nothing-here"))[0] == 404
            await b.close()
    run(main())


def test_extra_http_handlers_receive_post_bodies():
    from ostracon.relay.http import HttpResponse

    async def graphql(request):
        return HttpResponse.json(200, json.dumps({"method": request.method, "len": len(request.body),
                                                  "echo": request.body.decode()}))

    async def main():
        async with Relay(http_handlers={"/graphql": graphql}) as relay:
            status, _, body = await http(relay, "POST", "/graphql", b'{"query": "{ notes { id } }"}',
                                         headers=(("Content-Type", "application/json"),))
            assert status == 200
            assert json.loads(body) == {"method": "POST", "len": 29, "echo": '{"query": "{ notes { id } }"}'}
            # WebSockets still work on the same port.
            a = await Client.join(relay)
            assert isinstance(await a.next(), P.Welcome)
            await a.close()
    run(main())
    with pytest.raises(ValidationError):
        Relay(http_handlers={"graphql": graphql})


def test_in_process_close_sends_1001_and_flushes(tmp_path):
    from ostracon.relay.mailbox import SqliteMailbox

    async def main():
        mailbox = SqliteMailbox(tmp_path / "mb.sqlite")
        relay = await Relay(RelayConfig(), mailbox).start()
        a = await Client.join(relay)
        await a.caught_up()
        await a.publish(b"keep me")
        assert await a.next_data() == P.Ack(1)
        closing = asyncio.create_task(relay.close())
        assert await a.close_code() == P.CLOSE_GOING_AWAY
        await closing
        await relay.close()  # idempotent
        mailbox.close()
        again = SqliteMailbox(tmp_path / "mb.sqlite")
        assert again.read(ROOM, 0) == [(1, b"keep me")]
        again.close()
    run(main())


# --- real process: SIGTERM and logs ---------------------------------------------------------

def _start_relay_process(mailbox_path: Path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "py"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "ostracon.relay", "--host", "127.0.0.1", "--port", "0",
                             "--mailbox", f"sqlite:{mailbox_path}", "--log-level", "debug"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO))
    line = proc.stdout.readline().decode()
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if m is None:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"relay did not start: {line!r} {err.decode()!r}")
    return proc, int(m.group(1))


class _Remote:
    def __init__(self, port):
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"

    def room_url(self, room, since=None, epoch=None):
        return self.url + P.room_path(room, since, epoch)


def test_sigterm_closes_with_1001_flushes_mailbox_and_logs_no_payload(tmp_path):
    marker = b"SECRET-NOTE-TEXT-" + os.urandom(8).hex().encode()
    mailbox_path = tmp_path / "relay.sqlite"
    proc, port = _start_relay_process(mailbox_path)
    try:
        async def session():
            remote = _Remote(port)
            a = await Client.join(remote, since=0)
            b = await Client.join(remote, since=0)
            await a.caught_up()
            await b.caught_up()
            await a.publish(marker)
            assert await b.next_data() == P.Frame(1, marker)
            assert await a.next_data() == P.Ack(1)
            proc.send_signal(signal.SIGTERM)
            assert await a.close_code() == P.CLOSE_GOING_AWAY
            assert await b.close_code() == P.CLOSE_GOING_AWAY
        run(session())
        out, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    logs = out + err
    assert b"relay stopped" in logs and b"DEBUG" in logs  # debug logging really was on
    for needle in (marker, marker.hex().encode(), marker[:12]):
        assert needle not in logs
    # The frame survived the shutdown: a device joining later catches up from the file.
    proc, port = _start_relay_process(mailbox_path)
    try:
        async def later():
            c = await Client.join(_Remote(port), since=0)
            msgs = await c.caught_up()
            assert P.Frame(1, marker) in msgs
            await c.close()
        run(later())
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# --- units -----------------------------------------------------------------------------------

def test_token_bucket():
    b = TokenBucket(rate=2.0, burst=4, now=0.0)
    assert [b.take(0.0) for _ in range(5)] == [True] * 4 + [False]
    assert b.take(0.5) and not b.take(0.5)  # one token per half second
    assert b.take(100.0, 4) and not b.take(100.0)  # refill caps at burst


def test_config_validation():
    with pytest.raises(ValidationError):
        RelayConfig(max_frame_bytes=0)
    with pytest.raises(ValidationError):
        RelayConfig(send_queue_bytes=1024)  # cannot hold one max-size frame
    with pytest.raises(ValidationError):
        RelayConfig(rate_bytes_burst=10)
    with pytest.raises(ValidationError):
        RelayConfig(ping_interval_s=-1.0)
    assert RelayConfig(idle_timeout_s=None).idle_timeout_s is None
    with pytest.raises(ValidationError):
        RelayConfig(max_address_share=1.5)  # more than the whole mailbox
    with pytest.raises(ValidationError):
        RelayConfig(max_address_share=0.0)
    assert RelayConfig(max_address_share=None).max_address_share is None
