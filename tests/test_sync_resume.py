"""Resumable first upload (sync/client.py + the session's per-part progress) through a relay:
a connection cut late in a multi-megabyte push resumes from the last acknowledged part instead
of starting over, and a device that relies on the mailbox alone then gets everything. A device
whose catch-up was pruned from the mailbox is told so with a typed error."""

from __future__ import annotations

import asyncio
import os
import random

import ostracon
from ostracon.core.errors import CatchUpIncompleteError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.mailbox import MemoryMailbox
from ostracon.relay.server import Relay, RelayConfig
from ostracon.sync.native import start_sync
from ostracon.sync.options import meta_key
from polling import until

SEED = int(os.environ.get("OSTRACON_RESUME_SEED", "16"))
CRYPTO = NativeCrypto()
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.2, tick_interval_s=0.02, settle_s=0.1)
TIMEOUT = 60.0


class CuttingProxy:
    """TCP proxy to the relay that cuts its first connection after ``cut`` client bytes."""

    def __init__(self, target_port: int, cut: int):
        self.target_port = target_port
        self.cut = cut
        self.connections = 0
        self.sent = []  # client→relay bytes per connection
        self.server = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, cr, cw):
        index = self.connections
        self.connections += 1
        self.sent.append(0)
        rr, rw = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src, dst, count):
            try:
                while data := await src.read(65536):
                    if count:
                        self.sent[index] += len(data)
                    dst.write(data)
                    await dst.drain()
                    if count and index == 0 and self.sent[index] >= self.cut:
                        break
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                for w in (cw, rw):
                    w.transport.abort()

        await asyncio.gather(pump(cr, rw, True), pump(rr, cw, False))

    async def close(self):
        self.server.close()


def _space() -> Space:
    return Space.from_key(DeterministicRandom(f"resume{SEED}")(32), "resume-test", crypto=CRYPTO)


def _big_db(path, batches: int, docs: int, size: int):
    rng = random.Random(SEED)
    db = ostracon.open(str(path), random_bytes=DeterministicRandom(f"{SEED}/big"))
    col = db.collection("notes")
    for b in range(batches):
        for k in range(docs):
            col.create({"body": rng.randbytes(size).hex()}, id=f"n{b}-{k}")
        db.flush()  # one sealed batch each: the push has many resumable parts
    return db


def test_a_cut_first_upload_resumes_instead_of_restarting(tmp_path):
    async def main():
        space = _space()
        db = _big_db(tmp_path / "big", batches=24, docs=10, size=12_000)  # ~6 MB of hex
        total_docs = db.collection("notes").count()
        # Reference: one uninterrupted push, to know its size.
        async with Relay(RelayConfig()) as ref:
            h = await start_sync(db, ref.url, space, **FAST)
            await h.wait_synced(TIMEOUT)
            await h.stop()
            full = ref.metrics.bytes_in
        db.close()
        db = _big_db(tmp_path / "big2", batches=24, docs=10, size=12_000)
        async with Relay(RelayConfig(), MemoryMailbox()) as relay:
            proxy = CuttingProxy(relay.port, cut=int(full * 0.8))
            port = await proxy.start()
            url = f"ws://127.0.0.1:{port}"
            h = await start_sync(db, url, space, **FAST)
            await h.wait_synced(TIMEOUT)
            assert proxy.connections >= 2, "the first connection was never cut"
            meta = h._meta
            assert meta["pushed"] == h.replica.own_sealed() > 0
            await h.stop()
            # Resumed: the bytes after the cut are the unacknowledged rest, not a second upload.
            assert relay.metrics.bytes_in < 1.4 * full, (relay.metrics.bytes_in, full, proxy.sent)
            assert sum(proxy.sent[1:]) < 0.6 * full, (proxy.sent, full)
            # A new device, alone, gets everything from the mailbox.
            late = ostracon.open(str(tmp_path / "late"), random_bytes=DeterministicRandom("late"))
            hl = await start_sync(late, relay.url, space, **FAST)
            status = await hl.wait_synced(TIMEOUT)
            assert status.peers == 0 and status.last_error is None
            assert late.collection("notes").count() == total_docs
            assert late.state_hash() == db.state_hash()
            await hl.stop()
            late.close()
            await proxy.close()
        db.close()

    asyncio.run(main())


def test_a_device_whose_catch_up_was_pruned_is_told_to_sync_from_a_peer(tmp_path):
    async def main():
        space = _space()
        writer = _big_db(tmp_path / "w", batches=10, docs=10, size=10_000)  # ~2 MB of hex
        # A mailbox too small for the whole history: the oldest frames are pruned.
        mailbox = MemoryMailbox(max_room_bytes=700_000, max_total_bytes=1_000_000)
        async with Relay(RelayConfig(), mailbox) as relay:
            h = await start_sync(writer, relay.url, space, **FAST)
            await h.wait_synced(TIMEOUT)
            await h.stop()
            assert mailbox.stats().dropped["room_bytes"] > 0
            late = ostracon.open(str(tmp_path / "late"), random_bytes=DeterministicRandom("late2"))
            hl = await start_sync(late, relay.url, space, **FAST)
            await until(lambda: isinstance(hl.status.last_error, CatchUpIncompleteError), "the typed error")
            err = hl.status.last_error
            assert err.reason == "pruned" and err.oldest > 1
            assert late.collection("notes").count() < writer.collection("notes").count()
            # A peer online fills it in.
            h = await start_sync(writer, relay.url, space, **FAST)
            await until(lambda: late.collection("notes").count() == writer.collection("notes").count(),
                        "catch-up from the peer")
            await h.stop()
            await hl.stop()
            assert late.storage.get_meta(meta_key(relay.url, space.room_id)) is not None
            late.close()
        writer.close()

    asyncio.run(main())
