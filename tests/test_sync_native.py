"""Native sync (sync/native.py + sync/client.py) against the real relay, in-process on port 0."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

import ostracon
from ostracon.core.errors import TransportError, ValidationError, WrongKeyError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.mailbox import MemoryMailbox
from ostracon.relay.server import Relay, RelayConfig
from ostracon.sync.base import OFFLINE, ONLINE, SyncStatus
from ostracon.sync.client import SyncClient
from ostracon.sync.native import WebSocketTransport, start_sync, sync_once_blocking
from ostracon.sync.options import backoff_delay, meta_key

CRYPTO = NativeCrypto()
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.3, tick_interval_s=0.02, settle_s=0.2)
TIMEOUT = 10


def _space(seed: int = 1) -> Space:
    return Space.from_key(DeterministicRandom(seed)(32), "test", crypto=CRYPTO)


def _db(i: int, **kw):
    return ostracon.open(random_bytes=DeterministicRandom(f"db{i}"), **kw)


async def _converged(*dbs, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len({db.state_hash() for db in dbs}) != 1 or len({tuple(db.heads()) for db in dbs}) != 1:
        if loop.time() > end:
            raise AssertionError(f"no convergence: {[db.version_vector() for db in dbs]}")
        await asyncio.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_databases_converge_and_keep_converging():
    async def main():
        space = _space()
        async with Relay(RelayConfig(), port=0) as relay:
            a, b = _db(1), _db(2)
            for i in range(40):
                a.collection("todos").create({"n": i})
            b.collection("notes").create({"text": "hi"}, id="n1")
            statuses: list[SyncStatus] = []
            ha = await start_sync(a, relay.url, space, on_status=statuses.append, **FAST)
            hb = await start_sync(b, relay.url, space, **FAST)
            await ha.wait_synced(TIMEOUT)
            await hb.wait_synced(TIMEOUT)
            await _converged(a, b)
            # Live: a write on one side shows up on the other.
            b.collection("notes").patch("n1", {"text": "edited"})
            b.flush()
            hb.notify_local_change()
            await _converged(a, b)
            assert a.collection("notes").get("n1")["text"] == "edited"
            states = [s.state for s in statuses]
            assert states[0] == "connecting" and ONLINE in states
            assert any(s.synced and s.pending == 0 for s in statuses)
            assert ha.status.dropped == {} and ha.status.last_error is None
            await ha.stop()
            await hb.stop()
            assert ha.status.state == "stopped"

    asyncio.run(main())


def test_three_clients_with_offline_writes_converge():
    async def main():
        space = _space()
        async with Relay(RelayConfig(), port=0) as relay:
            dbs = [_db(i) for i in range(3)]
            for i, db in enumerate(dbs):
                for k in range(30):
                    db.collection("shared").create({"by": i, "k": k}, id=f"{i}-{k}")
                db.collection("shared").create({"by": i}, id="contended") if i == 0 else None
            handles = [await start_sync(db, relay.url, space, **FAST) for db in dbs]
            for h in handles:
                await h.wait_synced(TIMEOUT)
            await _converged(*dbs)
            assert dbs[2].collection("shared").count() == 91
            for h in handles:
                await h.stop()

    asyncio.run(main())


def test_a_device_catches_up_from_the_mailbox_when_the_author_is_gone():
    async def main():
        space = _space()
        async with Relay(RelayConfig(), port=0) as relay:
            a = _db(1)
            # Written while offline, then pushed by a short visit to the relay.
            for i in range(25):
                a.collection("todos").create({"n": i}, id=f"t{i}")
            ha = await start_sync(a, relay.url, space, **FAST)
            await ha.wait_synced(TIMEOUT)
            await ha.stop()
            a.collection("todos").patch("t1", {"n": -1})  # and one more offline write, then a visit
            ha = await start_sync(a, relay.url, space, **FAST)
            await ha.wait_synced(TIMEOUT)
            pushed_before = ha.stats["frames_out"]
            await ha.stop()
            assert pushed_before >= 1
            # b arrives when nobody else is there: everything comes from the mailbox.
            b = _db(2)
            hb = await start_sync(b, relay.url, space, **FAST)
            status = await hb.wait_synced(TIMEOUT)
            assert status.peers == 0
            await _converged(a, b)
            assert b.collection("todos").get("t1")["n"] == -1
            # The cursor is remembered in storage meta: a restart resumes after it.
            cursor = hb.status.cursor
            assert cursor >= 2
            await hb.stop()
            assert b.storage.get_meta(meta_key(relay.url, space.room_id)) is not None
            hb2 = SyncClient(b, relay.url, space, transport_factory=WebSocketTransport, **FAST)
            assert hb2._meta["cursor"] == cursor

    asyncio.run(main())


def test_wrong_passphrase_reports_wrong_key_and_applies_nothing():
    async def main():
        right = Space.from_passphrase("correct horse", "notes", iterations=1000, crypto=CRYPTO,
                                      _insecure_for_tests=True)
        wrong = Space.from_passphrase("incorrect horse", "notes", iterations=1000, crypto=CRYPTO,
                                      _insecure_for_tests=True)
        assert wrong.room_id != right.room_id  # on its own a wrong passphrase meets nobody
        async with Relay(RelayConfig(), port=0) as relay:
            a, b = _db(1), _db(2)
            a.collection("secret").create({"pin": 1234}, id="s")
            ha = await start_sync(a, relay.url, right, **FAST)
            await ha.wait_synced(TIMEOUT)
            # b is pointed at the right room (e.g. from a link) but holds another key: it cannot
            # even ask the relay to admit it, and says why.
            with pytest.raises(WrongKeyError):
                await start_sync(b, relay.url, wrong, room_id=right.room_id, **FAST)
            # The database remembers its space: opening it with the other key is refused too.
            hb = await start_sync(b, relay.url, wrong, **FAST)
            await hb.stop()
            with pytest.raises(WrongKeyError):
                await start_sync(b, relay.url, right, **FAST)
            assert b.collection("secret").count() == 0
            assert ha.status.last_error is None and ha.stats["blocks_new"] == 0
            await ha.stop()

    asyncio.run(main())


def test_reconnect_after_relay_restart_loses_nothing():
    async def main():
        space = _space()
        port = _free_port()
        a, b = _db(1), _db(2)
        states: list[str] = []
        relay = await Relay(RelayConfig(), MemoryMailbox(), port=port).start()
        ha = await start_sync(a, relay.url, space, on_status=lambda s: states.append(s.state), **FAST)
        hb = await start_sync(b, relay.url, space, **FAST)
        a.collection("todos").create({"n": 1}, id="one")
        await ha.wait_synced(TIMEOUT)
        await _converged(a, b)
        url = relay.url
        await relay.close()
        loop = asyncio.get_running_loop()
        end = loop.time() + TIMEOUT
        while ha.status.state == ONLINE:
            assert loop.time() < end
            await asyncio.sleep(0.02)
        # Writes while the relay is down are pending, then delivered after the restart (the new
        # relay has an empty mailbox with a new epoch: clients push their blocks again).
        a.collection("todos").create({"n": 2}, id="two")
        b.collection("todos").create({"n": 3}, id="three")
        a.flush()
        assert ha.status.pending >= 1
        relay = await Relay(RelayConfig(), MemoryMailbox(), port=port).start()
        try:
            await ha.wait_synced(TIMEOUT)
            await hb.wait_synced(TIMEOUT)
            await _converged(a, b)
            assert OFFLINE in states and states.count(ONLINE) >= 2
            assert b.collection("todos").get("two") is not None
            # A third device that only ever sees the new relay finds everything in its mailbox.
            await ha.stop()
            await hb.stop()
            c = _db(3)
            hc = await start_sync(c, url, space, **FAST)
            await hc.wait_synced(TIMEOUT)
            await _converged(a, b, c)
            await hc.stop()
        finally:
            await relay.close()

    asyncio.run(main())


def test_backoff_grows_with_jitter_while_the_relay_is_down():
    async def main():
        space = _space()
        db = _db(1)
        attempts: list[int] = []
        h = await start_sync(db, f"ws://127.0.0.1:{_free_port()}", space, jitter=lambda: 0.0,
                             on_status=lambda s: attempts.append(s.attempt), backoff_initial_s=0.01,
                             backoff_max_s=0.04, tick_interval_s=0.02)
        loop = asyncio.get_running_loop()
        end = loop.time() + TIMEOUT
        while max(attempts, default=0) < 5:
            assert loop.time() < end
            await asyncio.sleep(0.01)
        assert isinstance(h.status.last_error, TransportError)
        assert h.status.state in ("offline", "connecting") and not h.status.synced
        await h.stop()

    asyncio.run(main())


def test_backoff_delay_doubles_up_to_the_cap_with_jitter():
    delays = [backoff_delay(n, 0.25, 30.0, 0.0) for n in range(1, 12)]
    assert delays[:4] == [0.125, 0.25, 0.5, 1.0]
    assert delays[-1] == 15.0  # capped at 30 s, times the lowest jitter factor
    assert backoff_delay(3, 0.25, 30.0, 0.999) < 1.0 <= backoff_delay(3, 0.25, 30.0, 1.0)
    assert backoff_delay(10_000, 0.25, 30.0, 0.5) == 22.5


def test_sync_once_blocking_for_scripts():
    space = _space(7)
    ready = threading.Event()
    stop: dict = {}

    def serve():
        async def run():
            async with Relay(RelayConfig(), port=0) as relay:
                stop["url"] = relay.url
                stop["event"] = asyncio.Event()
                stop["loop"] = asyncio.get_running_loop()
                ready.set()
                await stop["event"].wait()

        asyncio.run(run())

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    assert ready.wait(TIMEOUT)
    try:
        a, b = _db(1), _db(2)
        a.collection("todos").create({"n": 1}, id="x")
        status = sync_once_blocking(a, stop["url"], space, timeout=TIMEOUT, **FAST)
        assert status.synced and status.pending == 0      # converged: says so
        assert sync_once_blocking(b, stop["url"], space, timeout=TIMEOUT, **FAST).synced
        assert b.collection("todos").get("x") == a.collection("todos").get("x")

        async def inside_a_loop():
            sync_once_blocking(a, stop["url"], space)

        with pytest.raises(ValidationError):
            asyncio.run(inside_a_loop())
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        th.join(TIMEOUT)
