"""Sync through each transport side by side: a full catch-up and live write propagation.

    python bench/bench_transports.py [DOCS] [LIVE]

For each transport two fresh in-memory databases sync one space: `a` holds DOCS documents and
`b` starts empty (catch-up: start → equal state hashes), then LIVE single writes on `a`, each
timed until `b` holds it (median and p95). Loopback only; the relay is in-process. Numbers are
printed as a markdown table and never asserted anywhere.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import ostracon
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.server import Relay, RelayConfig
from ostracon.sync.broadcast import BroadcastTransport, LocalBroadcast
from ostracon.sync.native import start_sync
from ostracon.sync.peer import PeerHub, PeerTransport

CRYPTO = NativeCrypto()
OPTS = dict(tick_interval_s=0.01, settle_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.5)


async def _wait(cond, poll: float = 0.001) -> None:
    while not cond():
        await asyncio.sleep(poll)


async def run(name: str, url: str, space: Space, factories, docs: int, live: int) -> tuple:
    a = ostracon.open(random_bytes=DeterministicRandom(f"bench-a-{name}"))
    b = ostracon.open(random_bytes=DeterministicRandom(f"bench-b-{name}"))
    for i in range(docs):
        a.collection("notes").create({"i": i, "text": "x" * 64})
    a.flush()
    t0 = time.perf_counter()
    ca = await start_sync(a, url, space, transport_factory=factories[0], **OPTS)
    cb = await start_sync(b, url, space, transport_factory=factories[1], **OPTS)
    await _wait(lambda: b.collection("notes").count() == docs and a.state_hash() == b.state_hash())
    catch_up = time.perf_counter() - t0
    lat = []
    for i in range(live):
        t1 = time.perf_counter()
        doc = a.collection("live").create({"i": i})
        a.flush()
        ca.notify_local_change()
        await _wait(lambda doc=doc: b.collection("live").get(doc) is not None)
        lat.append((time.perf_counter() - t1) * 1000)
    await ca.stop()
    await cb.stop()
    a.close()
    b.close()
    lat.sort()
    return name, catch_up, statistics.median(lat), lat[int(len(lat) * 0.95) - 1]


async def main(docs: int, live: int) -> None:
    rows = []
    space = Space.from_key(DeterministicRandom("bench")(32), "bench", crypto=CRYPTO)
    async with Relay(RelayConfig(), port=0) as relay:
        from ostracon.sync.native import WebSocketTransport

        rows.append(await run("relay websocket", relay.url, space, (WebSocketTransport,) * 2, docs, live))
    async with PeerHub(space) as hub:
        rows.append(await run("peer-to-peer websocket", hub.url, space, (hub.transport, PeerTransport), docs, live))
    async with PeerHub(space, listen=False) as hub:
        rows.append(await run("in-process hub", hub.url, space, (hub.transport,) * 2, docs, live))
    medium = LocalBroadcast()
    bc = (lambda: BroadcastTransport(medium.open, CRYPTO.random_bytes),) * 2
    rows.append(await run("broadcast (in-process medium)", "ws://broadcast", space, bc, docs, live))
    base = rows[0]
    print(f"\n{docs} documents catch-up, {live} live writes (loopback)\n")
    print("| transport | catch-up s | vs relay | live median ms | live p95 ms |")
    print("|---|---|---|---|---|")
    for name, cu, med, p95 in rows:
        print(f"| {name} | {cu:.2f} | {cu / base[1]:.2f} | {med:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else 50))
