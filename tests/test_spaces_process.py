"""Spaces against a REAL relay process: room admission, membership, removal with key rotation,
readers, wrong secrets, same-name spaces and answers replayed to another relay
(docs/CRYPTO.md, docs/RELAY.md "Admission").

The relay is `python -m ostracon.relay` in a child process (sqlite_relay from
relay_process); devices are in-process SyncClients, each with its own database on disk.
The outsider speaks the relay protocol by hand with `websockets`: it knows the room id (it is
in every URL) but not the space key. No timing is asserted: waits only guard against hangs.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

import ostracon
from ostracon.core.errors import WrongKeyError
from ostracon.core.protocol import relay as P
from ostracon.crypto import DeterministicRandom, spacefile
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.admission import REASON_OTHER_RELAY
from ostracon.sync.native import start_sync
from relay_process import sqlite_relay
from test_sync_process import FAST, TIMEOUT, _until

SEED = int(os.environ.get("OSTRACON_SPACES_SEED", "15"))
CRYPTO = NativeCrypto()


@pytest.fixture
def relay(tmp_path):
    r = sqlite_relay(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.kill()


def _open(tmp_path, name: str):
    return ostracon.open(str(tmp_path / name), random_bytes=DeterministicRandom(f"{SEED}/{name}"))


def _ids(db, col: str = "notes") -> set[str]:
    return {d["_id"] for d in db.collection(col).iter_docs()}


async def _outsider(url: str, room: str, messages: list[bytes]) -> tuple[list, int | None, str]:
    """Connect to `room` without its key, send `messages`, return (what the relay sent, close
    code, close reason)."""
    seen = []
    async with connect(f"{url}{P.room_path(room, 0)}", max_size=None, open_timeout=TIMEOUT) as ws:
        try:
            seen.append(P.decode_server_message(await asyncio.wait_for(ws.recv(), TIMEOUT)))
            for m in messages:
                await ws.send(m)
            while True:
                seen.append(P.decode_server_message(await asyncio.wait_for(ws.recv(), TIMEOUT)))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            return seen, code, exc.rcvd.reason if exc.rcvd is not None else ""
    raise AssertionError("the relay never closed the outsider")


def test_outsider_with_the_room_id_cannot_write_evict_inject_or_kick(relay, tmp_path):
    space = Space.generate("family", crypto=CRYPTO)

    async def main():
        a, b = _open(tmp_path, "a"), _open(tmp_path, "b")
        for i in range(20):
            a.collection("notes").create({"text": f"note {i}"}, id=f"n{i}")
        ha = await start_sync(a, relay.url, space, **FAST)
        hb = await start_sync(b, relay.url, space, **FAST)
        await ha.wait_synced(TIMEOUT)
        await hb.wait_synced(TIMEOUT)
        connections = (ha.stats["connections"], hb.stats["connections"])
        big = P.encode_publish(os.urandom(1024 * 1024 - 1))
        attacks = {
            "evict (70 x 1 MiB publishes)": [big] * 70,
            "inject (one 113-byte frame)": [P.encode_publish(os.urandom(112))],
            "kick (1,000 two-byte frames)": [P.encode_ephemeral(b"x")] * 1000,
            "forged answer": [P.encode_auth(os.urandom(64), P.relay_name(relay.url)), P.encode_publish(b"\xa1" * 112)],
        }
        for what, msgs in attacks.items():
            seen, code, reason = await _outsider(relay.url, space.room_id, msgs)
            # The outsider got a challenge and a close, nothing else: no welcome, no peers
            # count (presence), no frames.
            assert [type(m) for m in seen] == [P.Challenge], (what, seen)
            assert code == P.CLOSE_NOT_ADMITTED and reason.startswith("not admitted"), (what, code, reason)
        # Members were never disconnected and saw no foreign frame.
        assert (ha.stats["connections"], hb.stats["connections"]) == connections
        assert ha.status.dropped == {} and hb.status.dropped == {}
        # A new device still gets every note, with no error.
        c = _open(tmp_path, "c")
        status = await asyncio.to_thread(c.sync_blocking, relay.url, space, TIMEOUT, **FAST)
        assert status.last_error is None and status.dropped == {}
        assert _ids(c) == {f"n{i}" for i in range(20)}
        await ha.stop()
        await hb.stop()
        for db in (a, b, c):
            db.close()

    asyncio.run(main())


def test_removed_device_reads_nothing_after_removal_and_cannot_write(relay, tmp_path):
    async def main():
        a, b, c = _open(tmp_path, "a"), _open(tmp_path, "b"), _open(tmp_path, "c")
        admin = Space.generate("team", identity=a.identity, crypto=CRYPTO)
        sb = Space.from_invite(admin.invite(relay.url), identity=b.identity, crypto=CRYPTO)
        sc = Space.from_invite(admin.invite(relay.url), identity=c.identity, crypto=CRYPTO)
        a.collection("notes").create({"text": "before"}, id="before")
        handles = [await start_sync(db, relay.url, sp, **FAST) for db, sp in ((a, admin), (b, sb), (c, sc))]
        await _until(lambda: all(_ids(db) == {"before"} for db in (b, c)), "first note everywhere")
        await _until(lambda: {m["role"] for m in admin.member_list()} == {"admin", "writer"}
                     and len(admin.member_list()) == 3, "both joins reach the admin")
        b.collection("notes").create({"text": "b while a member"}, id="b-member")
        await _until(lambda: "b-member" in _ids(a) and "b-member" in _ids(c), "b's note while a member")
        old_room = admin.room_id
        upto = a.version_vector().get(b.actor, 0)
        admin.remove(b.identity.actor, upto=upto)
        handles[0].notify_local_change()
        await _until(lambda: sc.room_id == admin.room_id != old_room, "c moves to the new epoch")
        await _until(lambda: sb.removed, "b learns it was removed")
        assert sb.room_id == old_room  # b holds no key of the new epoch
        a.collection("notes").create({"text": "after"}, id="after")
        c.collection("notes").create({"text": "c after"}, id="c-after")
        b.collection("notes").create({"text": "b after removal"}, id="b-after")
        for h in handles:
            h.notify_local_change()
        await _until(lambda: {"after", "c-after"} <= _ids(a) & _ids(c), "members keep syncing")
        # b keeps trying (old room: nobody is there any more) and reads nothing new.
        await _until(lambda: handles[1].status.synced or handles[1].status.last_error is not None, "b settles")
        assert _ids(b) == {"before", "b-member", "b-after"}, _ids(b)  # its own, nothing new of others
        assert "b-after" not in _ids(a) | _ids(c)
        # b, told the new room id, cannot even ask to be admitted: it holds no key for it.
        with pytest.raises(WrongKeyError):
            await start_sync(b, relay.url, sb, room_id=admin.room_id, **FAST)
        # Old epochs stay readable for members: a new device of c's replays nothing lost.
        assert "b-member" in _ids(c)
        for h in handles:
            await h.stop()
        for db in (a, b, c):
            db.close()

    asyncio.run(main())


def test_reader_cannot_write(relay, tmp_path):
    async def main():
        a, r, w = _open(tmp_path, "a"), _open(tmp_path, "r"), _open(tmp_path, "w")
        admin = Space.generate("club", identity=a.identity, crypto=CRYPTO)
        sr = Space.from_invite(admin.invite(relay.url, role="reader"), identity=r.identity, crypto=CRYPTO)
        sw = Space.from_invite(admin.invite(relay.url, role="writer"), identity=w.identity, crypto=CRYPTO)
        a.collection("notes").create({"text": "from admin"}, id="admin")
        handles = [await start_sync(db, relay.url, sp, **FAST) for db, sp in ((a, admin), (r, sr), (w, sw))]
        await _until(lambda: len(admin.member_list()) == 3, "joins reach the admin")
        assert sr.role() == "reader"
        r.collection("notes").create({"text": "reader tries"}, id="reader")
        w.collection("notes").create({"text": "writer writes"}, id="writer")
        for h in handles:
            h.notify_local_change()
        await _until(lambda: "writer" in _ids(a) and "writer" in _ids(r), "the writer's note")
        await _until(lambda: handles[1].status.pending == 0, "the reader's block reached the relay")
        for h in (handles[0], handles[2]):
            await h.wait_synced(TIMEOUT)
        assert "reader" not in _ids(a) and "reader" not in _ids(w)
        assert handles[0].replica.refused >= 1 or handles[2].replica.refused >= 1
        # A fresh device of the admin refuses it too (it is not a UI rule).
        a2 = _open(tmp_path, "a2")
        s2 = Space.from_invite(admin.invite(relay.url), identity=a2.identity, crypto=CRYPTO)
        h2 = await start_sync(a2, relay.url, s2, **FAST)
        await _until(lambda: "writer" in _ids(a2), "a new device catches up")
        assert "reader" not in _ids(a2)
        for h in (*handles, h2):
            await h.stop()
        for db in (a, r, w, a2):
            db.close()

    asyncio.run(main())


def test_wrong_passphrase_or_invite_raises_wrong_key_error(relay, tmp_path):
    a = _open(tmp_path, "a")
    space = Space.generate("notes", identity=a.identity, crypto=CRYPTO)
    path = tmp_path / "notes.space"
    spacefile.save(space, path, passphrase="correct horse", iterations=1000, _insecure_for_tests=True)
    with pytest.raises(WrongKeyError):
        spacefile.load(path, passphrase="correct hose", identity=a.identity)
    opened = spacefile.load(path, passphrase="correct horse", identity=a.identity)
    assert opened.room_id == space.room_id and opened.role() == "admin"
    a.collection("notes").create({"text": "x"}, id="x")
    a.sync_blocking(relay.url, opened, timeout=TIMEOUT, **FAST)
    # An invite to another space (valid, but not this database's space): WrongKeyError.
    other = Space.generate("notes", crypto=CRYPTO)
    with pytest.raises(WrongKeyError):
        a.sync_blocking(relay.url, Space.from_invite(other.invite(relay.url)), timeout=TIMEOUT, **FAST)
    assert a.collection("notes").count() == 1
    a.close()


def test_two_spaces_with_the_same_name_never_meet(relay, tmp_path):
    async def main():
        one, two = Space.generate("family", crypto=CRYPTO), Space.generate("family", crypto=CRYPTO)
        assert one.room_id != two.room_id and one.space_id != two.space_id
        x, y = _open(tmp_path, "x"), _open(tmp_path, "y")
        x.collection("notes").create({"text": "x"}, id="x")
        y.collection("notes").create({"text": "y"}, id="y")
        hx = await start_sync(x, relay.url, one, **FAST)
        hy = await start_sync(y, relay.url, two, **FAST)
        await hx.wait_synced(TIMEOUT)
        await hy.wait_synced(TIMEOUT)
        assert hx.status.peers == 0 and hy.status.peers == 0
        assert _ids(x) == {"x"} and _ids(y) == {"y"}
        await hx.stop()
        await hy.stop()
        x.close()
        y.close()

    asyncio.run(main())


def test_an_admission_answer_cannot_be_replayed_to_another_relay(relay, tmp_path):
    """An attacker's relay passes the real relay's challenge to a member that dialled it and
    forwards the member's answer: the real relay refuses it, because the answer is signed for
    the attacker's relay name (docs/RELAY.md "Admission"). The same member is admitted when
    it dials the real relay."""
    space = Space.generate("family", crypto=CRYPTO)
    outcomes: list[tuple] = []

    async def attacker(member):
        async with connect(relay.url + P.room_path(space.room_id), open_timeout=TIMEOUT) as real:
            await member.send(await asyncio.wait_for(real.recv(), TIMEOUT))
            answer = await asyncio.wait_for(member.recv(), TIMEOUT)
            await real.send(answer)
            seen = []
            try:
                while True:
                    seen.append(P.decode_server_message(await asyncio.wait_for(real.recv(), TIMEOUT)))
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                outcomes.append((P.decode_auth(answer).relay, seen, code, exc.rcvd.reason if exc.rcvd else ""))
        await member.close()

    async def main():
        a = _open(tmp_path, "a")
        a.collection("notes").create({"text": "x"}, id="x")
        async with serve(attacker, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            handle = await start_sync(a, f"ws://127.0.0.1:{port}", space, **FAST)
            await _until(lambda: outcomes, "the real relay judging the replayed answer")
            await handle.stop()
        name, seen, code, reason = outcomes[0]
        assert name == f"127.0.0.1:{port}"
        assert seen == [] and code == P.CLOSE_NOT_ADMITTED and reason == REASON_OTHER_RELAY
        status = await asyncio.to_thread(a.sync_blocking, relay.url, space, TIMEOUT, **FAST)
        assert status.last_error is None
        a.close()

    asyncio.run(main())
