"""Seal signatures: ECDSA P-256 beside Ed25519 on the native backend (`cryptography`).

    python bench/bench_signatures.py [--batches N]

Per operation: sign and verify one seal message; end to end: a replica receiving N sealed
batches of 10 blocks from one remote actor (every seal verified, blocks applied). Each number
is the median of ROUNDS rounds; the last column is P-256 over Ed25519.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from ostracon.core.block import KIND_BLOCK, KIND_SEAL, envelope
from ostracon.core.replica import Replica
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto

ROUNDS = 5
OPS = 300
T0 = 1_700_000_000_000


def _median(fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(ROUNDS))


def per_op(ident: Identity, crypto: NativeCrypto) -> tuple[float, float]:
    msg = b"ostracon/seal/v1\x00" + bytes(120)
    sig = ident.sign(msg)

    def sign() -> float:
        t = time.perf_counter()
        for _ in range(OPS):
            ident.sign(msg)
        return (time.perf_counter() - t) / OPS * 1e6

    def verify() -> float:
        t = time.perf_counter()
        for _ in range(OPS):
            crypto.verify_actor(ident.actor, msg, sig)
        return (time.perf_counter() - t) / OPS * 1e6

    return _median(sign), _median(verify)


def receive(ident: Identity, crypto: NativeCrypto, batches: int) -> float:
    src = Replica(ident.actor, verify=crypto.verify_actor)
    envs: list[bytes] = []
    for b in range(batches):
        for i in range(10):
            src.commit("c", f"d{b}", [("s", "f", i)], T0 + b * 10 + i)
        start = len(src.order) - 10
        envs += [envelope(KIND_BLOCK, src.blocks[c]) for c in src.order[start:]]
        envs += [envelope(KIND_SEAL, s) for s in src.seal_local(ident.sign)]

    def run() -> float:
        dst = Replica(b"\xee" * 32, verify=crypto.verify_actor)
        t = time.perf_counter()
        res = dst.apply_envelopes(envs, wall_ms=T0 + 10**9)
        assert res.new == batches * 10 and res.seals == batches
        return (time.perf_counter() - t) * 1e3

    return _median(run)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=100)
    a = ap.parse_args()
    crypto = NativeCrypto(random_bytes=DeterministicRandom("bench-signatures"))
    rows = {}
    for alg in ("ed25519", "p256"):
        ident = Identity.generate(crypto, algorithm=alg)
        s, v = per_op(ident, crypto)
        rows[alg] = (s, v, receive(ident, crypto, a.batches))
    print(f"{'':34} {'Ed25519':>10} {'P-256':>10} {'P-256/Ed25519':>14}")
    for i, label in enumerate(["sign one seal (µs)", "verify one seal (µs)",
                               f"receive {a.batches} sealed batches x10 (ms)"]):
        e, p = rows["ed25519"][i], rows["p256"][i]
        print(f"{label:34} {e:10.1f} {p:10.1f} {p / e:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
