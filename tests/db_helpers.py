"""Shared set-up of the Database API tests: identities, a settable clock, a storage that counts
(and can fail) its flushes, and `open_db`."""

import ostracon
from ostracon import StorageError
from ostracon.core.block import open_envelope
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.storage.memory import MemoryStorage

T0 = 1_700_000_000_000
ID_A = Identity.from_seed(bytes(range(32)))
ID_B = Identity.from_seed(bytes(range(1, 33)))


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


class SpyStorage(MemoryStorage):
    """Counts flushes; `broken` makes flush fail like a full disk."""

    def __init__(self):
        super().__init__()
        self.flushes = 0
        self.broken = False
        self.appended = []

    def flush(self):
        if self.broken:
            raise StorageError("disk on fire")
        super().flush()
        self.flushes += 1

    def append(self, records):
        pos = super().append(records)
        self.appended.extend(open_envelope(r)[0] for r in records)
        return pos

    def kinds(self):
        return list(self.appended)  # readable after close too


def open_db(identity=ID_A, clock=None, storage=None, seed=1, **kw):
    return ostracon.open(identity=identity, clock=clock or Clock(), storage=storage,
                         random_bytes=DeterministicRandom(seed), **kw)


def user(doc):
    return {k: v for k, v in doc.items() if not k.startswith("_")}
