"""A P-256-signed store, made in one runtime and verified in another.

ECDSA signatures are randomised, so runtimes are compared by verification, never by bytes:
- `make_store()` writes a small mixed-algorithm history (the database's own P-256 identity,
  a P-256 and an Ed25519 stage identity, a text field) with this runtime's crypto backend
  and returns its envelopes and state hash;
- `verify_store(store)` applies such a store to a fresh database of this runtime and checks
  that every block is accepted and verified, `verify()` finds nothing, the state hash is
  the maker's, and tampered copies are refused.

tests/vectors/p256_store.json is one store made natively (`python tests/p256_store.py
--write` regenerates it after a deliberate format change); e2e/runtime_checks.py verifies it
in every runtime and carries fresh stores across (make test-node, e2e/test_browser.py).

Plain Python, no pytest import: Pyodide imports this module too.
"""

from __future__ import annotations

import json
import os

VECTOR_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors", "p256_store.json")
T0 = 1_700_000_000_000


class _Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        self.t += 7
        return self.t


def make_store() -> dict:
    """A fresh mixed-algorithm store made with this runtime's default crypto backend."""
    import ostracon
    from ostracon.crypto import DeterministicRandom
    from ostracon.crypto.identity import Identity

    own = Identity.generate(algorithm="p256")
    stage_p = Identity.generate(algorithm="p256")
    stage_ed = Identity.generate()
    db = ostracon.open(identity=own, clock=_Clock(), random_bytes=DeterministicRandom("p256-store"))
    try:
        pages = db.collection("pages")
        pages.create({"title": "scan 1", "n": 0, "body": ostracon.Text("hello")}, id="p1")
        pages.text("p1", "body").insert(5, ", world")
        db.flush()  # ends the editing burst: text stays with the own identity
        with db.as_identity(stage_p), db.provenance({"stage": "ocr", "model": "m1"}):
            pages.patch("p1", {"ocr": "he11o"})
            pages.create({"title": "scan 2"}, id="p2")
        with db.as_identity(stage_ed), db.provenance({"stage": "lang"}):
            pages.patch("p1", {"lang": "en"})
            pages.increment("p1", "n", 3)
        pages.patch("p2", {"done": True})
        db.flush()
        envs = db.blocks_since({})
        return {"envelopes": [e.hex() for e in envs], "state_hash": db.state_hash(),
                "actors": sorted(a.actor.hex() for a in (own, stage_p, stage_ed))}
    finally:
        db.close()


def _tampered(envs: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """Copies that must not verify: a flipped bit in a P-256 seal's signature, the same seal
    with its high-S twin, and a block swapped for one with a changed value."""
    from ostracon.core.actors import P256, P256_N
    from ostracon.core.block import KIND_SEAL, decode_seal, envelope, open_envelope
    from ostracon.core.encoding import decode, encode_canonical

    out = []
    for i, e in enumerate(envs):
        kind, payload = open_envelope(e)
        if kind == KIND_SEAL and decode_seal(payload).algorithm == P256:
            m = decode(payload)
            flipped = bytes([m["g"][0] ^ 1]) + m["g"][1:]
            twin = m["g"][:32] + (P256_N - int.from_bytes(m["g"][32:], "big")).to_bytes(32, "big")
            for name, sig in (("flipped signature bit", flipped), ("high-S twin", twin)):
                copy = list(envs)
                copy[i] = envelope(KIND_SEAL, encode_canonical({**m, "g": sig}))
                out.append((name, copy))
            break
    return out


def verify_store(store: dict) -> dict:
    """Apply `store` (from make_store or the pinned file) to a fresh database of this runtime;
    raise AssertionError unless it verifies completely and tampered copies do not."""
    import ostracon
    from ostracon.core.actors import algorithm_of
    from ostracon.core.block import KIND_SEAL, decode_seal, open_envelope

    envs = [bytes.fromhex(e) for e in store["envelopes"]]
    db = ostracon.open()
    try:
        n = db.apply_blocks(envs)
        if db.last_apply.rejected:
            raise AssertionError(f"envelopes refused: {db.last_apply.rejected[:3]}")
        problems = db.verify()
        if problems:
            raise AssertionError(f"verify() found: {problems[:3]}")
        if db.state_hash() != store["state_hash"]:
            raise AssertionError("state hash differs from the maker's")
        statuses = {c["signature"]["status"] for p in ("p1", "p2") for c in db.collection("pages").history(p)}
        if statuses != {"verified"}:
            raise AssertionError(f"history signature statuses: {statuses}")
        algs = sorted({algorithm_of(decode_seal(open_envelope(e)[1]).actor) or "?"
                       for e in envs if open_envelope(e)[0] == KIND_SEAL})
    finally:
        db.close()
    refused = []
    for name, copy in _tampered(envs):
        other = ostracon.open()
        try:
            other.apply_blocks(copy, strict=False)
            if other.state_hash() == store["state_hash"] or not other.last_apply.rejected:
                raise AssertionError(f"a store with a {name} was accepted")
            refused.append(name)
        finally:
            other.close()
    if len(refused) != 2:
        raise AssertionError(f"tampered copies checked: {refused}")
    return {"blocks": n, "seal_algorithms": algs, "refused": refused}


def load_vector(path: str = VECTOR_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
    store = make_store()
    print(json.dumps(verify_store(store)))
    if "--write" in sys.argv:
        doc = {"about": "A P-256-signed store made natively (tests/p256_store.py); every runtime must verify it.",
               **store}
        with open(VECTOR_PATH, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        print("wrote", VECTOR_PATH)
