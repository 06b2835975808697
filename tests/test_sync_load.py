"""Load: many native sync clients write through one in-process relay; all converge, nothing lost.

Issue 4 asks for 100 clients × 100 writes. On the 2-CPU reference machine that size takes
~140-230 s (every client verifies and applies the 9,900 blocks of the 99 others: ~1,000,000
block applications on one event loop), so by default this runs 100 clients × 20 writes
(~20-25 s) and the full size with OSTRACON_LOAD_FULL=1. OSTRACON_LOAD_CLIENTS and
OSTRACON_LOAD_WRITES override either.

All clients share one event loop with the relay (WebSocket connections over loopback). They
join at once, then everyone writes live, flushing every BATCH writes. At the end every
database holds every document of every client, all state hashes, heads and version vectors
are identical, and a device that joins afterwards, alone, gets all of it from the relay's
mailbox. A second test is a join storm: STORM_CLIENTS devices that all wrote offline connect
at the same moment.
"""

from __future__ import annotations

import asyncio
import os
import time

import ostracon
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.mailbox import MemoryMailbox
from ostracon.relay.server import Relay, RelayConfig
from ostracon.sync.native import start_sync

FULL = os.environ.get("OSTRACON_LOAD_FULL") == "1"
CLIENTS = int(os.environ.get("OSTRACON_LOAD_CLIENTS", "100"))
WRITES = int(os.environ.get("OSTRACON_LOAD_WRITES", "100" if FULL else "20"))
BATCH = 10  # writes per flush: the sink seals and the client pushes one batch at a time
# Clients that write half of their changes before joining: 0 (none) by default. With 1 in 10
# (OSTRACON_LOAD_OFFLINE_EVERY=10) their pushes land in the join storm of 100 members: on the
# 2-CPU reference machine the relay then kicks slow consumers (send queue full), clients
# reconnect, needs and answers multiply, and 100 × 20 takes 66-210 s instead of ~25 s (it
# still converges). The join storm is covered at a smaller scale below.
OFFLINE_EVERY = int(os.environ.get("OSTRACON_LOAD_OFFLINE_EVERY", "0"))
SEED = int(os.environ.get("OSTRACON_LOAD_SEED", "1"))
# Hang guards only (no timing is asserted): generous, scaled with the work (~N² block applies).
TIMEOUT = 120.0 + CLIENTS * CLIENTS * WRITES / 5_000
CRYPTO = NativeCrypto()
STORM_CLIENTS = int(os.environ.get("OSTRACON_LOAD_STORM_CLIENTS", "100" if FULL else "30"))


def _db(i: int):
    ident = Identity.from_seed(DeterministicRandom(f"load-identity-{SEED}-{i}")(32), crypto=CRYPTO)
    return ostracon.open(identity=ident, crypto=CRYPTO, random_bytes=DeterministicRandom(f"load-{SEED}-{i}"))


def _write(db, i: int, ks: range) -> None:
    col = db.collection("load")
    for k in ks:
        col.create({"client": i, "k": k, "text": f"write {k} of client {i}"}, id=f"c{i:03d}-{k:04d}")


async def _until(cond, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + TIMEOUT
    while not cond():
        assert loop.time() < end, f"timed out after {TIMEOUT:.0f} s waiting for {what} (seed {SEED})"
        await asyncio.sleep(0.25)


def test_many_clients_through_one_relay_converge_and_lose_nothing():
    space = Space.from_key(DeterministicRandom(f"load-space-{SEED}")(32), "load", crypto=CRYPTO)
    total = CLIENTS * WRITES
    offline = WRITES // 2

    async def main():
        started = time.perf_counter()
        # Every client shares 127.0.0.1 here, unlike devices on a real network.
        async with Relay(RelayConfig(max_connections_per_ip=1000), MemoryMailbox(), port=0) as relay:
            dbs = [_db(i) for i in range(CLIENTS)]
            offline_writers = set(range(0, CLIENTS, OFFLINE_EVERY)) if OFFLINE_EVERY else set()
            for i in sorted(offline_writers):  # half of their writes while offline
                _write(dbs[i], i, range(offline))
                dbs[i].flush()
            handles = await asyncio.gather(*(start_sync(db, relay.url, space) for db in dbs))
            # The join storm (with the offline writers' pushes) settles before live writes start.
            await asyncio.gather(*(h.wait_synced(TIMEOUT) for h in handles))

            async def writer(i: int) -> None:
                first = offline if i in offline_writers else 0
                for k0 in range(first, WRITES, BATCH):
                    _write(dbs[i], i, range(k0, min(k0 + BATCH, WRITES)))
                    dbs[i].flush()
                    handles[i].notify_local_change()
                    await asyncio.sleep(0)

            await asyncio.gather(*(writer(i) for i in range(CLIENTS)))
            await _until(lambda: all(db.collection("load").count() == total for db in dbs),
                         "every client to hold every write")
            await asyncio.gather(*(h.wait_synced(TIMEOUT) for h in handles))
            expected = {f"c{i:03d}-{k:04d}" for i in range(CLIENTS) for k in range(WRITES)}
            fingerprints = set()
            for i, db in enumerate(dbs):
                ids = {d["_id"] for d in db.collection("load").iter_docs()}
                assert ids == expected, f"client {i} lost {sorted(expected - ids)[:5]} (seed {SEED})"
                assert set(db.version_vector().values()) == {WRITES}  # one block per write, all actors
                fingerprints.add((db.state_hash(), tuple(db.heads()), tuple(sorted(db.version_vector().items()))))
            assert len(fingerprints) == 1, f"{len(fingerprints)} different states (seed {SEED})"
            assert sum(h.stats["blocks_new"] for h in handles) == total * (CLIENTS - 1)
            await asyncio.gather(*(h.stop() for h in handles))
            # Everything is in the relay's mailbox: a newcomer alone in the room gets it all.
            late = _db(CLIENTS)
            hl = await start_sync(late, relay.url, space)
            status = await hl.wait_synced(TIMEOUT)
            assert status.peers == 0 and late.collection("load").count() == total
            assert (late.state_hash(), tuple(late.heads())) == next(iter(fingerprints))[:2]
            await hl.stop()
            m = relay.metrics_snapshot()
        print(f"\nload: {CLIENTS} clients × {WRITES} writes in {time.perf_counter() - started:.1f} s; relay: "
              f"{m['frames_in']} frames in, {m['frames_out']} frames out, {m['bytes_out']:,} bytes out, "
              f"drops {sum(m['drops'].values())}, connections {m['connections_total']}")

    asyncio.run(main())


def test_join_storm_of_devices_with_offline_writes_converges():
    space = Space.from_key(DeterministicRandom(f"storm-space-{SEED}")(32), "storm", crypto=CRYPTO)
    n = STORM_CLIENTS

    async def main():
        started = time.perf_counter()
        # Every client shares 127.0.0.1 here, unlike devices on a real network.
        async with Relay(RelayConfig(max_connections_per_ip=1000), MemoryMailbox(), port=0) as relay:
            dbs = [_db(1000 + i) for i in range(n)]
            for i, db in enumerate(dbs):
                _write(db, i, range(WRITES))
                db.flush()
            handles = await asyncio.gather(*(start_sync(db, relay.url, space) for db in dbs))
            await _until(lambda: all(db.collection("load").count() == n * WRITES for db in dbs),
                         "every device to hold every offline write")
            await asyncio.gather(*(h.wait_synced(TIMEOUT) for h in handles))
            assert len({(db.state_hash(), tuple(db.heads())) for db in dbs}) == 1, SEED
            assert all(h.status.last_error is None or h.status.state == "online" for h in handles)
            await asyncio.gather(*(h.stop() for h in handles))
            m = relay.metrics_snapshot()
        print(f"\njoin storm: {n} devices × {WRITES} offline writes in {time.perf_counter() - started:.1f} s; relay: "
              f"{m['frames_in']} frames in, {m['frames_out']} frames out, drops {sum(m['drops'].values())}, "
              f"connections {m['connections_total']}")

    asyncio.run(main())
