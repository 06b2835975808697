"""Shared set-up of the replica and delivery tests: identities, a replica with signature
checks, envelope helpers."""

from ostracon.core.block import KIND_BLOCK, KIND_SEAL, envelope, open_envelope
from ostracon.core.replica import Replica
from ostracon.crypto import default_backend
from ostracon.crypto.identity import Identity

CRYPTO = default_backend()
ID_A = Identity.from_seed(bytes(range(32)))
ID_B = Identity.from_seed(bytes(range(1, 33)))
ID_C = Identity.from_seed(bytes(range(2, 34)))
A, B = ID_A.actor, ID_B.actor
W = 1_700_000_000_000


def rep(ident=None, **kw) -> Replica:
    actor = ident.actor if ident is not None else b"\xee" * 32
    return Replica(actor, verify=CRYPTO.ed25519_verify, **kw)


def block_env(data: bytes) -> bytes:
    return envelope(KIND_BLOCK, data)


def seal_env(data: bytes) -> bytes:
    return envelope(KIND_SEAL, data)


def kinds(envs):
    return [open_envelope(e)[0] for e in envs]


def fields(r, doc="x", col="t"):
    d = r.doc(col, doc)
    return None if d is None else dict(d.user_fields())


def writer():
    return rep(ID_A)
