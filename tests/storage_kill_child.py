"""Child process for tests/test_storage_kill.py: writes until it is SIGKILLed.

Usage: storage_kill_child.py PATH SEED DURABILITY. Record contents are a function of their
position only (see `record`), so the parent can check every record after any number of
kills. After each flush the child prints the flushed position on stdout (its pipe): that
is the acknowledgement. Now and then it writes a snapshot (the rolling state hash at that
position) and compacts.
"""

from __future__ import annotations

import hashlib
import random
import sys


def record(pos: int) -> bytes:
    digest = hashlib.sha256(b"rec:%d" % pos).digest()
    return digest * (1 + digest[0] % 4)  # 32..128 bytes


def state_hash(h: bytes, rec: bytes) -> bytes:
    """The "database state": a hash chained over every record in order."""
    return hashlib.sha256(h + rec).digest()


def main() -> None:
    from ostracon.storage.file import FileStorage

    path, seed, durability = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    s = FileStorage(path, durability=durability, segment_bytes=4096)
    snap = s.load_snapshot()
    h, pos = (snap[0], snap[1]) if snap else (b"", 0)
    for p, rec in s.records(pos):
        h = state_hash(h, rec)
        pos = p
    out = sys.stdout
    while True:
        batch = [record(p) for p in range(pos + 1, pos + 1 + rng.randint(1, 20))]
        s.append(batch)
        for rec in batch:
            h = state_hash(h, rec)
        pos += len(batch)
        s.flush()
        out.write(f"{pos}\n")
        out.flush()
        if rng.random() < 0.05:
            s.write_snapshot(h, pos)
            if rng.random() < 0.5:
                s.compact(pos)


if __name__ == "__main__":
    main()
