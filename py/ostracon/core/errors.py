"""One error hierarchy for the whole package, split by cause.

Decoders never leak IndexError/KeyError/ValueError: they raise one of these.
"""

from __future__ import annotations


class OstraconError(Exception):
    """Root of every error Ostracon raises on purpose."""


class ValidationError(OstraconError, ValueError):
    """The caller handed in something that cannot be stored (bad type, reserved name, too big)."""


class ConflictError(OstraconError):
    """A compare-and-set precondition failed, or a uniqueness rule was violated. Nothing changed."""


class NotFoundError(OstraconError, LookupError):
    """The document (or commit, or collection) does not exist."""


class CorruptBlockError(OstraconError):
    """Bytes that claim to be a block are malformed, non-canonical, or do not match their CID."""


class SignatureError(OstraconError):
    """A seal is missing, malformed or does not verify against its actor's key."""


class CursorError(OstraconError):
    """A change-feed cursor is malformed or points before the retained feed (a gap): rebuild."""


class HistoryPrunedError(OstraconError):
    """A history / time-travel query reached the pruning horizon; older commits are gone."""


class ClosedError(OstraconError):
    """The database was closed."""


# --- storage -----------------------------------------------------------------------------

class StorageError(OstraconError):
    """Persistence failed. The message says what and where."""


class StorageUnavailableError(StorageError):
    """The location cannot be used: missing parent, not a directory, no permission."""


class LockedError(StorageError):
    """Another process has this database open for writing."""


class CorruptLogError(StorageError):
    """A record in the middle of a log segment is damaged (not a torn tail)."""

    def __init__(self, message: str, *, segment: str | None = None, offset: int | None = None):
        super().__init__(message)
        self.segment = segment
        self.offset = offset


class CorruptSnapshotError(StorageError):
    """A snapshot file is malformed or fails its checksum."""


class DiskFullError(StorageError):
    """The device ran out of space (ENOSPC) or the browser quota was exceeded."""


class ReadOnlyError(StorageError):
    """A write was attempted on a database opened read-only."""


# --- sync / crypto ---------------------------------------------------------------------

class CryptoError(OstraconError):
    """A cryptographic operation failed."""


class WrongKeyError(CryptoError):
    """A frame was encrypted under a different space key (key-commitment tag mismatch)."""


class FrameError(OstraconError):
    """A sync frame is malformed, tampered, replayed, truncated or for another room."""


class ProtocolError(OstraconError):
    """The peer broke the sync protocol (bad message order, unknown version)."""


class TransportError(OstraconError):
    """The connection to the relay failed or was closed."""
