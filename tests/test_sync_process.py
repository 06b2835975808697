"""Native sync against a REAL relay process (`python -m ostracon.relay --port 0 --mailbox sqlite:...`).

Clients are in-process asyncio tasks (one SyncClient each), every device with its own database
directory on disk; the relay is a separate OS process that the tests start, SIGKILL and restart
on the same port with the same SQLite mailbox. Checked:

* offline writes on three devices, then reconnect → identical state hashes, heads and vectors,
  again after the databases are closed and reopened from disk;
* the relay killed (SIGKILL) and restarted mid-sync on the same port and mailbox → nothing lost,
  every device converges, and the mailbox epoch survived (the cursors stayed valid);
* a device that joins when every other device is offline (and the relay was killed in between)
  catches up from the relay's on-disk mailbox alone;
* a wrong passphrase: on its own it derives another room (the device sees an empty room and
  decrypts nothing); pointed at the right room (explicit room id) it gets WrongKeyError before
  connecting (it cannot answer the room's admission challenge), so it never writes into the
  room; the database stays bound to the space it first synced (WrongKeyError for another).

Randomness is seeded (SEED below, printed in assertion messages); no timing is asserted: waits
have generous timeouts and only guard against hangs.
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

import ostracon
from ostracon.core.errors import WrongKeyError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.sync.base import OFFLINE, ONLINE
from ostracon.sync.client import SyncClient
from ostracon.sync.native import WebSocketTransport, start_sync
from ostracon.sync.options import meta_key
from relay_process import sqlite_relay

SEED = int(os.environ.get("OSTRACON_SYNC_PROCESS_SEED", "4"))
CRYPTO = NativeCrypto()
# Short backoff so a restarted relay is found again quickly; a short tick keeps tests brisk.
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.4, tick_interval_s=0.02, settle_s=0.2)
TIMEOUT = 30.0


# --------------------------------------------------------------------------- the relay process

@pytest.fixture
def relay(tmp_path):
    r = sqlite_relay(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.kill()


# --------------------------------------------------------------------------- helpers

def _space(seed: int = SEED) -> Space:
    return Space.from_key(DeterministicRandom(f"space{seed}")(32), "process-test", crypto=CRYPTO)


def _open(tmp_path, name: str):
    return ostracon.open(str(tmp_path / name), random_bytes=DeterministicRandom(f"{SEED}/{name}"))


def _fingerprint(db) -> tuple:
    return db.state_hash(), tuple(db.heads()), tuple(sorted(db.version_vector().items()))


async def _until(cond, what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what} (seed {SEED})")
        await asyncio.sleep(0.01)


async def _converged(*dbs, timeout: float = TIMEOUT) -> None:
    await _until(lambda: len({_fingerprint(db) for db in dbs}) == 1,
                 f"convergence of {[db.version_vector() for db in dbs]}", timeout)


async def _synced(handles) -> None:
    for h in handles:
        await h.wait_synced(TIMEOUT)


def _offline_writes(db, device: int, rng: random.Random, n: int, tag: str) -> set[str]:
    """Creates, patches of a document every device edits, increments of a shared counter."""
    made = set()
    col = db.collection("items")
    for k in range(n):
        doc_id = f"{tag}-{device}-{k}"
        col.create({"device": device, "k": k, "word": rng.choice(["alpha", "beta", "gamma"])}, id=doc_id)
        made.add(doc_id)
    shared = db.collection("shared")
    if shared.get("doc") is None:
        shared.create({}, id="doc")
    shared.patch("doc", {f"by{device}": tag, "contended": f"{tag}-{device}"})
    if shared.get("counter") is None:
        shared.create({}, id="counter")
    shared.increment("counter", "n", device + 1)
    db.flush()
    return made


# --------------------------------------------------------------------------- tests

def test_three_devices_with_offline_writes_converge_and_stay_converged_after_reopen(relay, tmp_path):
    rng = random.Random(SEED)
    space = _space()

    async def main():
        dbs = [_open(tmp_path, f"dev{i}") for i in range(3)]
        expected: set[str] = set()
        for i, db in enumerate(dbs):
            expected |= _offline_writes(db, i, rng, 40 + 10 * i, "first")
        assert len({db.state_hash() for db in dbs}) == 3
        handles = [await start_sync(db, relay.url, space, **FAST) for db in dbs]
        await _synced(handles)
        await _converged(*dbs)
        for db in dbs:
            assert {d["_id"] for d in db.collection("items").iter_docs()} == expected, SEED
        cursors = [h.status.cursor for h in handles]
        epochs = {h._meta["epoch"] for h in handles}
        assert len(epochs) == 1 and min(cursors) >= 1
        for h in handles:
            await h.stop()

        # Round two: more offline writes everywhere, databases closed and reopened from disk
        # (as after an app restart), then reconnect: the persisted cursors resume the mailbox.
        for i, db in enumerate(dbs):
            expected |= _offline_writes(db, i, rng, 15, "second")
            db.close()
        dbs = [_open(tmp_path, f"dev{i}") for i in range(3)]
        for db, cursor in zip(dbs, cursors, strict=False):
            resumed = SyncClient(db, relay.url, space, transport_factory=WebSocketTransport, **FAST)
            assert resumed._meta["cursor"] == cursor and resumed._meta["epoch"] in epochs
        handles = [await start_sync(db, relay.url, space, **FAST) for db in dbs]
        await _synced(handles)
        await _converged(*dbs)
        fingerprint = _fingerprint(dbs[0])
        for db in dbs:
            assert {d["_id"] for d in db.collection("items").iter_docs()} == expected, SEED
            # Every device's increments count exactly once: 2 rounds × (1 + 2 + 3).
            assert db.collection("shared").get("counter")["n"] == 12, SEED
            assert {k for k in db.collection("shared").get("doc") if k.startswith("by")} == {"by0", "by1", "by2"}
        assert all(h.status.last_error is None and h.status.dropped == {} for h in handles)
        for h in handles:
            await h.stop()
        for db in dbs:
            db.close()
        # What was received is durable: reopened, every device shows the same state.
        dbs = [_open(tmp_path, f"dev{i}") for i in range(3)]
        assert {_fingerprint(db) for db in dbs} == {fingerprint}
        for db in dbs:
            db.close()

    asyncio.run(main())


def test_relay_killed_and_restarted_mid_sync_loses_nothing(relay, tmp_path):
    rng = random.Random(SEED + 1)
    space = _space()
    bulk = 3000  # an initial push of several frames, so the kill lands while frames are in flight

    async def main():
        dbs = [_open(tmp_path, f"dev{i}") for i in range(3)]
        expected: set[str] = set()
        col = dbs[0].collection("bulk")
        for k in range(bulk):
            col.create({"k": k, "pad": "p" * rng.randrange(100, 400)}, id=f"bulk-{k}")
            expected.add(f"bulk-{k}")
        dbs[0].flush()
        for i, db in enumerate(dbs):
            expected |= _offline_writes(db, i, rng, 10, "pre")
        states: list[list[str]] = [[], [], []]
        handles = [await start_sync(db, relay.url, space, on_status=lambda s, i=i: states[i].append(s.state),
                                    **FAST) for i, db in enumerate(dbs)]

        # Live writers on every device, running across the kill and the restart.
        stop_writing = asyncio.Event()
        live: set[str] = set()

        async def writer(i: int) -> None:
            k = 0
            while not stop_writing.is_set():
                doc_id = f"live-{i}-{k}"
                dbs[i].collection("live").create({"i": i, "k": k}, id=doc_id)
                live.add(doc_id)
                k += 1
                if k % 3 == 0:
                    dbs[i].flush()
                    handles[i].notify_local_change()
                await asyncio.sleep(0.005)
            dbs[i].flush()
            handles[i].notify_local_change()

        writers = [asyncio.create_task(writer(i)) for i in range(3)]
        # Kill as soon as the relay has acknowledged the bulk push, typically while the other
        # devices are still receiving it (in trial runs they held 0 or 1,400 of 3,000 blocks)
        # and while live writes are in flight.
        await _until(lambda: handles[0]._meta["pushed"] > 0, "the first acknowledged push")
        epoch = handles[0]._meta["epoch"]
        relay.kill()
        await _until(lambda: all(h.status.state != ONLINE for h in handles), "all clients offline")
        await asyncio.sleep(0.3)  # keep writing while the relay is down
        assert all(h.status.pending > 0 for h in handles), [h.status for h in handles]
        await asyncio.to_thread(relay.start)  # same port, same mailbox file; clients keep running
        await asyncio.sleep(0.3)  # and while it comes back
        stop_writing.set()
        await asyncio.gather(*writers)
        expected |= live
        await _synced(handles)
        await _converged(*dbs)
        for i, db in enumerate(dbs):
            ids = ({d["_id"] for d in db.collection("bulk").iter_docs()}
                   | {d["_id"] for d in db.collection("items").iter_docs()}
                   | {d["_id"] for d in db.collection("live").iter_docs()})
            assert ids == expected, f"device {i} lost {sorted(expected - ids)[:5]} (seed {SEED})"
            assert OFFLINE in states[i] and states[i].count(ONLINE) >= 2, states[i]
        # The SQLite mailbox survived the SIGKILL: same epoch, so cursors stayed valid.
        assert {h._meta["epoch"] for h in handles} == {epoch}
        for h in handles:
            assert h.status.last_error is None or not isinstance(h.status.last_error, WrongKeyError)
            await h.stop()
        for db in dbs:
            db.close()

    asyncio.run(main())


def test_late_device_catches_up_from_the_mailbox_alone(relay, tmp_path):
    rng = random.Random(SEED + 2)
    space = _space()

    async def main():
        dbs = [_open(tmp_path, f"dev{i}") for i in range(3)]
        for i, db in enumerate(dbs):
            _offline_writes(db, i, rng, 30, "early")
        handles = [await start_sync(db, relay.url, space, **FAST) for db in dbs]
        await _synced(handles)
        await _converged(*dbs)
        for h in handles:
            await h.stop()
        # Everyone offline; one device writes more and visits the relay alone.
        _offline_writes(dbs[1], 1, rng, 5, "later")
        h1 = await start_sync(dbs[1], relay.url, space, **FAST)
        await h1.wait_synced(TIMEOUT)
        await h1.stop()
        target = _fingerprint(dbs[1])
        # The relay dies hard and comes back: only its on-disk mailbox remains.
        relay.kill()
        await asyncio.to_thread(relay.start)
        late = _open(tmp_path, "late")
        hl = await start_sync(late, relay.url, space, **FAST)
        status = await hl.wait_synced(TIMEOUT)
        assert status.peers == 0  # nobody else was there: all of it came from the mailbox
        assert _fingerprint(late) == target, SEED
        assert late.collection("items").count() == 3 * 30 + 5
        assert hl.stats["blocks_new"] == sum(late.version_vector().values())
        await hl.stop()
        assert late.storage.get_meta(meta_key(relay.url, space.room_id)) is not None
        late.close()
        late = _open(tmp_path, "late")
        assert _fingerprint(late) == target
        late.close()
        for db in dbs:
            db.close()

    asyncio.run(main())


class CountingCrypto(NativeCrypto):
    """Counts AES-GCM decryptions: 'nothing decrypted' is then a number, not a hope."""

    def __init__(self) -> None:
        super().__init__()
        self.decrypts = 0

    def aes_gcm_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        self.decrypts += 1
        return super().aes_gcm_decrypt(key, nonce, ciphertext, aad)


def _passphrase_space(passphrase: str, crypto) -> Space:
    # 1,000 iterations only to keep the test fast (production floor: 600,000).
    return Space.from_passphrase(passphrase, "family photos", iterations=1000, crypto=crypto,
                                 _insecure_for_tests=True)


def test_wrong_passphrase_gets_a_clear_outcome_and_decrypts_nothing(relay, tmp_path):
    """Uses the blocking helper (`db.sync_blocking`), as a script would."""
    right_crypto, wrong_crypto = CountingCrypto(), CountingCrypto()
    right = _passphrase_space("correct horse battery staple", right_crypto)
    wrong = _passphrase_space("correct horse battery stable", wrong_crypto)
    assert right.room_id != wrong.room_id
    opts = dict(FAST, settle_s=0.1)
    a = _open(tmp_path, "a")
    a.collection("secret").create({"pin": "8412-secret"}, id="vault")
    a.flush()
    a.sync_blocking(relay.url, right, timeout=TIMEOUT, **opts)
    decrypts_a = right_crypto.decrypts

    # 1. A wrong passphrase on its own derives another room id: the relay never puts the two
    #    devices together. What the user sees: an empty space (no data, no error, no frame).
    b = _open(tmp_path, "b")
    status = b.sync_blocking(relay.url, wrong, timeout=TIMEOUT, **opts)
    assert status.last_error is None and status.dropped == {}
    assert b.collections() == [] and b.version_vector() == {}
    assert wrong_crypto.decrypts == 0

    # 2. Pointed at the right room (e.g. a link carrying the room id) with the wrong key: the
    #    room id is the public key of the right room key, so the wrong key cannot answer the
    #    relay's challenge → WrongKeyError before connecting, nothing decrypted or published.
    b.collection("intruder").create({"note": "b-private"}, id="x")
    b.flush()
    with pytest.raises(WrongKeyError):
        b.sync_blocking(relay.url, wrong, timeout=TIMEOUT, room_id=right.room_id, **opts)
    assert wrong_crypto.decrypts == 0
    # 3. The database remembers its space: opening b with the right key now is a WrongKeyError
    #    too (it holds another space's data), never a silent mix of the two.
    with pytest.raises(WrongKeyError):
        b.sync_blocking(relay.url, right, timeout=TIMEOUT, **opts)
    assert b.collection("secret").count() == 0 and b.collection("secret").get("vault") is None

    # 4. The right passphrase on a new device gets everything, and no error: nothing of b ever
    #    reached the room.
    c = _open(tmp_path, "c")
    c_crypto = CountingCrypto()
    status = c.sync_blocking(relay.url, _passphrase_space("correct horse battery staple", c_crypto),
                             timeout=TIMEOUT, **opts)
    assert status.last_error is None and status.dropped == {}
    assert c.collection("secret").get("vault")["pin"] == "8412-secret"
    assert c.collection("intruder").count() == 0
    assert right_crypto.decrypts == decrypts_a
    for db in (a, b, c):
        db.close()


def test_relay_process_shuts_down_gracefully_on_sigterm(relay, tmp_path):
    """SIGTERM: members closed with 1001, exit status 0, and the mailbox intact on restart."""
    space = _space()

    async def main():
        db = _open(tmp_path, "dev")
        db.collection("items").create({"x": 1}, id="kept")
        states: list[str] = []
        h = await start_sync(db, relay.url, space, on_status=lambda s: states.append(s.state), **FAST)
        await h.wait_synced(TIMEOUT)
        epoch, cursor = h._meta["epoch"], h.status.cursor
        # In a thread: the event loop must keep running to answer the relay's closing handshake.
        assert await asyncio.to_thread(relay.terminate) == 0
        await _until(lambda: h.status.state != ONLINE, "the client noticing the shutdown")
        await asyncio.to_thread(relay.start)
        await h.wait_synced(TIMEOUT)
        assert (h._meta["epoch"], h.status.cursor) == (epoch, cursor)  # nothing re-pushed
        await h.stop()
        db.close()

    asyncio.run(main())
