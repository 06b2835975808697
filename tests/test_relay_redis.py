"""Scale-out: three real relay processes on one real Redis (``--backend redis://...``).

Clients are spread over the processes. Checked: devices converge through different relay
processes; a device catches up from the shared mailbox after the process its peers used was
SIGKILLed; room member caps, per-address caps and rate buckets hold across processes. Waits
only guard against hangs; nothing asserts timing.
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

import ostracon
from ostracon.core.protocol import relay as P
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.redis_backend import redis_backend
from ostracon.relay.server import Relay, RelayConfig
from ostracon.sync.native import start_sync
from polling import until
from redis_server import redis_server  # noqa: F401  (fixture)
from relay_process import RawClient, RelayProcess
from room_keys import room_for

SEED = int(os.environ.get("OSTRACON_REDIS_SEED", "16"))
CRYPTO = NativeCrypto()
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.4, tick_interval_s=0.02, settle_s=0.2)
TIMEOUT = 30.0
ROOM = room_for("redis-room")
MiB = 1024 * 1024


def _relays(server, tmp_path, n: int, *flags: str) -> list[RelayProcess]:
    return [RelayProcess(["--backend", server.url, *flags], str(tmp_path / f"relay{i}.log")).start()
            for i in range(n)]


@pytest.fixture
def cluster(redis_server, tmp_path):  # noqa: F811  (the imported fixture)
    relays = _relays(redis_server, tmp_path, 3, "--max-room-members", "5", "--max-connections-per-ip", "12",
                     "--rate-bytes-per-s", "1024", "--rate-bytes-burst", str(3 * MiB))
    try:
        yield relays
    finally:
        for r in relays:
            r.kill()


def _space() -> Space:
    return Space.from_key(DeterministicRandom(f"redis{SEED}")(32), "redis-test", crypto=CRYPTO)


def _open(tmp_path, name: str):
    return ostracon.open(str(tmp_path / name), random_bytes=DeterministicRandom(f"{SEED}/{name}"))


def _fingerprint(db) -> tuple:
    return db.state_hash(), tuple(db.heads()), tuple(sorted(db.version_vector().items()))


def _writes(db, device: int, rng: random.Random, n: int, tag: str) -> None:
    col = db.collection("items")
    for k in range(n):
        col.create({"device": device, "k": k, "w": rng.choice(["a", "b", "c"])}, id=f"{tag}-{device}-{k}")
    db.flush()


def test_devices_on_different_relay_processes_converge_and_catch_up_after_a_process_dies(cluster, tmp_path):
    rng = random.Random(SEED)
    space = _space()

    async def main():
        dbs = [_open(tmp_path, f"dev{i}") for i in range(3)]
        for i, db in enumerate(dbs):
            _writes(db, i, rng, 20, "early")
        # Device i talks to relay process i.
        handles = [await start_sync(db, cluster[i].url, space, **FAST) for i, db in enumerate(dbs)]
        for h in handles:
            await h.wait_synced(TIMEOUT)
        await until(lambda: len({_fingerprint(db) for db in dbs}) == 1, f"convergence (seed {SEED})")
        # Live: a write on device 0 reaches devices 1 and 2 through the other processes.
        _writes(dbs[0], 0, rng, 5, "live")
        handles[0].notify_local_change()
        await until(lambda: len({_fingerprint(db) for db in dbs}) == 1, f"live convergence (seed {SEED})")
        for h in handles:
            await h.stop()
        target = _fingerprint(dbs[0])
        # The process devices 0 and 1 used dies hard; a new device, alone, on another process
        # catches up from the shared mailbox.
        cluster[0].kill()
        late = _open(tmp_path, "late")
        hl = await start_sync(late, cluster[2].url, space, **FAST)
        status = await hl.wait_synced(TIMEOUT)
        assert status.peers == 0  # nobody else was online: all of it came from the mailbox
        assert _fingerprint(late) == target, SEED
        assert late.collection("items").count() == 3 * 20 + 5
        await hl.stop()
        for db in (*dbs, late):
            db.close()

    asyncio.run(main())


def test_caps_and_rate_buckets_hold_across_processes(cluster):
    async def main():
        a, b, c = cluster
        # Room member cap 5, counted over all processes.
        members = [await RawClient.join(r.url, ROOM) for r in (a, b, c, a, b)]
        for m in members:
            await m.until(lambda x: isinstance(x, P.CaughtUp))
        sixth = await RawClient.join(c.url, ROOM)
        assert await sixth.close_code() == P.CLOSE_TRY_AGAIN
        assert c.metrics()["drops"]["room_full"] == 1
        # Per-address cap 12 over all processes: 5 held, 7 more in other rooms, the 13th refused.
        others = []
        for i in range(7):
            cl = await RawClient.join(cluster[i % 3].url, room_for(f"redis-other{i}"))
            await cl.until(lambda x: isinstance(x, P.CaughtUp))
            others.append(cl)
        extra = await RawClient.join(b.url, room_for("redis-extra"))
        assert await extra.close_code() == P.CLOSE_TRY_AGAIN
        assert b.metrics()["drops"]["per_ip"] == 1
        # Freeing one slot on process a admits a newcomer on process c.
        await others[0].close()
        await until(lambda: a.metrics()["connections"] == 4, "the close to reach process a")
        again = await RawClient.join(c.url, room_for("redis-again"))
        assert isinstance(await again.next(), P.Welcome)
        # Rate buckets: 3 MiB burst for this room and address, spent through process a; the next
        # frame through process b is accepted but held back (the bucket lives in Redis).
        frame = b"z" * (MiB - 64)
        for _ in range(3):
            await members[0].publish(frame)
        await members[0].until(lambda x: isinstance(x, P.Ack) and x.cursor == 3)
        assert b.metrics()["drops"]["rate_limit"] == 0
        await members[1].publish(frame)
        await members[1].until(lambda x: isinstance(x, P.Ack))
        await until(lambda: b.metrics()["drops"]["rate_limit"] == 1, "process b to throttle")
        # Every member, on every process, received the stored frames in order.
        for m in members[2:]:
            got = [x.cursor for x in await m.until(lambda x: isinstance(x, P.Frame) and x.cursor == 4)
                   if isinstance(x, P.Frame)]
            assert got == [1, 2, 3, 4]
        for cl in (*members, *others[1:], again):
            await cl.close()

    asyncio.run(main())


def test_out_of_order_bus_delivery_never_skips_a_frame(redis_server):  # noqa: F811
    """Frames stored by one process reach a member of another in cursor order, even when the
    bus delivers them late or out of order (the member reads the range from the mailbox)."""
    async def main():
        backends = [redis_backend(redis_server.url) for _ in range(2)]
        try:
            async with Relay(RelayConfig(), backend=backends[0]) as r0, \
                    Relay(RelayConfig(), backend=backends[1]) as r1:
                reader = await RawClient.join(r1.url, ROOM)
                await reader.until(lambda x: isinstance(x, P.CaughtUp))
                writer = await RawClient.join(r0.url, ROOM)
                await writer.until(lambda x: isinstance(x, P.CaughtUp))
                # Simulate a late bus: store frames behind process 1's back, then deliver only the
                # newest one over the bus.
                for i in range(5):
                    backends[0].mailbox.append(ROOM, b"hidden%d" % i)
                await writer.publish(b"visible")
                got = await reader.until(lambda x: isinstance(x, P.Frame) and x.cursor == 6)
                assert [x.cursor for x in got if isinstance(x, P.Frame)] == [1, 2, 3, 4, 5, 6]
                assert r1.metrics.drops["resync"] >= 1
                await reader.close()
                await writer.close()
        finally:
            for b in backends:
                b.close()

    asyncio.run(main())
