"""One error hierarchy for the whole package, split by cause.

Decoders never leak IndexError/KeyError/ValueError: they raise one of these.
"""

from __future__ import annotations


class OstraconError(Exception):
    """Root of every error Ostracon raises on purpose.

    `op_index`: for an op of `Database.send_many` that was refused, its position in the
    batch (None otherwise)."""

    op_index: int | None = None


class ValidationError(OstraconError, ValueError):
    """The caller handed in something that cannot be stored (bad type, reserved name, too big)."""


class MemberLogFullError(ValidationError):
    """A space's member log (crypto/members.py) has no room for an entry: the log is full,
    its last slots are reserved for admins, or too many entries already wait for parents."""


class ConflictError(OstraconError):
    """A compare-and-set precondition failed, or a uniqueness rule was violated. Nothing changed."""


class NotFoundError(OstraconError, LookupError):
    """The document (or commit, or collection) does not exist."""


class CorruptBlockError(OstraconError):
    """Bytes that claim to be a block are malformed, non-canonical, or do not match their CID.

    Raised at open for a stored block that fails verification; then `segment`, `offset`
    (where its record starts) and `cid` (text) name it, and `problems` lists every finding.
    """

    def __init__(self, message: str = "", *, segment: str | None = None, offset: int | None = None,
                 cid: str | None = None, problems: tuple = ()) -> None:
        super().__init__(message)
        self.segment = segment
        self.offset = offset
        self.cid = cid
        self.problems = problems


class SignatureError(OstraconError):
    """A seal is missing, malformed or does not verify against its actor's key."""


class CursorError(OstraconError):
    """A change-feed cursor is malformed or points before the retained feed (a gap): rebuild."""


class OwnHistoryMissingError(OstraconError):
    """This device's own earlier blocks are missing locally (a lost snapshot, a repaired
    store): writing now would reuse its sequence numbers and contradict its published
    history. Sync with a peer to pull them back; writes work again once they are here."""


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


class MissingSnapshotError(CorruptLogError):
    """The log records a compaction (records up to a position were dropped because a
    snapshot covers them) but no snapshot file covering them exists: opening would show an
    empty or partial database and reuse sequence numbers, so it is refused."""


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


# --- queries ------------------------------------------------------------------------------

class QueryTooExpensiveError(OstraconError):
    """No index serves this query and a scan would read more than `fallback_docs_max` docs."""

    def __init__(self, message: str, *, docs: int = 0, fallback_docs_max: int = 0):
        super().__init__(message)
        self.docs = docs
        self.fallback_docs_max = fallback_docs_max


class IndexBuildingError(QueryTooExpensiveError):
    """The index this query needs is being (re)built and a scan would be too expensive.

    Retry after `eta_ms` (or step the rebuild scheduler); `progress` = docs indexed so far.
    """

    def __init__(self, message: str, *, index: str = "", progress: int = 0,
                 eta_ms: int | None = None, docs: int = 0, fallback_docs_max: int = 0):
        super().__init__(message, docs=docs, fallback_docs_max=fallback_docs_max)
        self.index = index
        self.progress = progress
        self.eta_ms = eta_ms


class QueryCursorError(ValidationError):
    """A pagination cursor is malformed, tampered with, or belongs to another order."""


# --- schemas ------------------------------------------------------------------------------

class SchemaValidationError(ValidationError):
    """A document does not fit the schema; `.field` is the dotted path of the culprit."""

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.field = field


class LensNotFoundError(NotFoundError):
    """No chain of registered lenses leads from one schema version to the other."""


# --- frames (sync wire) -------------------------------------------------------------------

class OversizeFrameError(FrameError):
    reason = "oversize"


class TruncatedFrameError(FrameError):
    reason = "truncated"


class MalformedFrameError(FrameError):
    reason = "malformed"


class ForeignRoomError(FrameError):
    reason = "foreign_room"


class ReplayedFrameError(FrameError):
    reason = "replayed"


class TamperedFrameError(FrameError):
    reason = "tampered"


# --- sync protocol and transports ---------------------------------------------------------

class TransportClosed(TransportError):
    """The connection is closed. `code` is the WebSocket close code (None: no close frame,
    e.g. the connection could not be opened or was cut)."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class MalformedMessageError(ProtocolError):
    """A sync message could not be decoded or breaks a rule of the protocol."""


# --- storage ------------------------------------------------------------------------------

class StorageFailedError(StorageError):
    """An earlier write failed in a way that cannot be undone in place (fsync error, failed
    rollback); the adapter refuses further writes. Close and reopen: recovery keeps every
    acknowledged record."""


# --- relay --------------------------------------------------------------------------------

class MailboxError(StorageError):
    """The mailbox backend failed (I/O error, corrupt file)."""


class CatchUpIncompleteError(TransportError):
    """The relay's mailbox no longer holds everything this device lacks (frames before
    ``oldest`` were pruned, or the mailbox was lost): what is missing must come from a peer
    device that holds it, so sync with one online. ``reason`` is the relay's gap reason."""

    def __init__(self, message: str, reason: str = "", oldest: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.oldest = oldest


# --- identities ---------------------------------------------------------------------------

class IdentityFileError(StorageError):
    """An identity file is missing, unreadable, malformed, or for a different format/version."""


class IdentityExistsError(IdentityFileError):
    """`save` was asked to write over an existing file without `overwrite=True`."""


class InsecurePermissionsError(IdentityFileError):
    """The identity file is readable or writable by group/others: treat the key as exposed."""
