"""A device in its own process for tests/test_sync_peer.py: opens a database on disk, makes
seeded writes, then either holds the space's room (`host`: prints `listening <port>`) or
dials a peer (`dial <url>`), and prints `synced <state hash>` once it holds `expect` documents.
It exits when stdin closes.

    python tests/peer_child.py host|dial URL  DIR  SPACE_KEY_HEX  SEED  COUNT  EXPECT
"""

from __future__ import annotations

import asyncio
import random
import sys

import ostracon
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.sync.native import start_sync
from ostracon.sync.peer import PeerHub, PeerTransport

FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.5, tick_interval_s=0.02, settle_s=0.2)


async def main(argv: list[str]) -> None:
    role = argv[0]
    url = argv[1] if role == "dial" else None
    directory, key, seed, count, expect = argv[-5], bytes.fromhex(argv[-4]), int(argv[-3]), int(argv[-2]), \
        int(argv[-1])
    space = Space.from_key(key, "peers", crypto=NativeCrypto())
    db = ostracon.open(directory, random_bytes=DeterministicRandom(f"peer{seed}"))
    rng = random.Random(seed)
    for n in range(count):
        db.collection("notes").create({"by": seed, "n": n, "x": rng.random()})
    db.flush()
    hub = None
    if role == "host":
        hub = await PeerHub(space, host="127.0.0.1", port=0).start()
        print("listening", hub.port, flush=True)
        client = await start_sync(db, hub.url, space, transport_factory=hub.transport, **FAST)
    else:
        assert url is not None
        client = await start_sync(db, url, space, transport_factory=PeerTransport, **FAST)
    loop = asyncio.get_running_loop()
    while db.collection("notes").count() < expect:
        await asyncio.sleep(0.02)
    await client.wait_synced(120)
    print("synced", db.state_hash(), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)   # until the test closes our stdin
    await client.stop()
    if hub is not None:
        await hub.close()
    db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
