"""The storage adapter contract: opaque records, snapshots and metadata.

An adapter knows nothing of CRDTs, blocks or documents. The engine hands it opaque byte
records (envelopes) in batches; each record gets a position (1, 2, 3, ... in append order,
never reused). A snapshot is an opaque blob that covers every record up to a position; on
open the engine loads the newest valid snapshot and replays the records after it.

Durability: `append` may buffer; `flush` returns only once everything appended before it is
durable (per the adapter's durability setting) and raises a StorageError subclass otherwise.
Nothing that `flush` acknowledged may ever be lost. Every adapter passes
tests/storage_contract.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..core.errors import StorageError

# Meta is for small bookkeeping values (frontiers, cursors): adapters keep all of it in memory
# and the file adapter copies it into every new log segment, so both are bounded.
MAX_META_KEY_BYTES = 1024
MAX_META_VALUE_BYTES = 1024 * 1024


def check_meta(key: str, value: bytes) -> bytes:
    """Validate a meta key/value pair (the same rules in every adapter); return value as bytes."""
    if not isinstance(key, str) or not key:
        raise StorageError(f"meta key must be a non-empty str, not {key!r}")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise StorageError("meta key is not valid Unicode (lone surrogate)") from None
    if len(encoded) > MAX_META_KEY_BYTES:
        raise StorageError(f"meta key longer than {MAX_META_KEY_BYTES} bytes")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise StorageError(f"meta value must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > MAX_META_VALUE_BYTES:
        raise StorageError(f"meta value of {len(value)} bytes exceeds {MAX_META_VALUE_BYTES}")
    return value


@dataclass(frozen=True)
class OpenReport:
    """What an adapter found and did while opening (shown by `db.open_report()`)."""

    records: int = 0
    snapshot_position: int = 0
    truncated_bytes: int = 0          # torn tail cut off (a crash during append)
    quarantined: tuple[str, ...] = ()  # side files written by repair=True
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Tail:
    """What `Storage.tail()` found: the data records another process flushed since the
    previous look, as (position, record) in position order; `reset`: the adapter reloaded
    its view (the records after the last one read were compacted away): rebuild from
    `load_snapshot()` and `records()`."""

    records: tuple[tuple[int, bytes], ...] = ()
    reset: bool = False


def check_keep(keep_snapshots: object) -> int:
    """`keep_snapshots` of `compact`: an int >= 1 (ValueError otherwise)."""
    if type(keep_snapshots) is not int or keep_snapshots < 1:
        raise ValueError(f"keep_snapshots must be an int >= 1, not {keep_snapshots!r:.40}")
    return keep_snapshots


class Storage(ABC):
    """Opaque records + snapshots + meta. Single writer; reads may happen any time."""

    read_only: bool = False

    @abstractmethod
    def append(self, records: Sequence[bytes]) -> int:
        """Queue records in order; return the position of the last one. Not yet durable."""

    @abstractmethod
    def flush(self) -> None:
        """Make everything appended so far (and meta set so far) durable, or raise StorageError."""

    @abstractmethod
    def records(self, after: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield (position, record) for every record with position > after, in order."""

    @abstractmethod
    def last_position(self) -> int:
        """Position of the last appended record (0 if none)."""

    @abstractmethod
    def write_snapshot(self, data: bytes, position: int) -> None:
        """Atomically store a snapshot covering records 1..position (durable on return)."""

    @abstractmethod
    def load_snapshot(self) -> tuple[bytes, int] | None:
        """Newest valid snapshot as (data, position), or None."""

    @abstractmethod
    def get_meta(self, key: str) -> bytes | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: bytes) -> None:
        """Store a small metadata value (durable at the next flush)."""

    @abstractmethod
    def compact(self, position: int, keep_snapshots: int = 1) -> None:
        """Drop records with position <= `position` and the snapshots older than `position`,
        except the newest `keep_snapshots` snapshots (kept for audit: each is a complete,
        verifiable state of its time).

        Precondition (checked, StorageError otherwise): 0 <= position <= last_position() and a
        snapshot covering at least `position` exists; keep_snapshots >= 1 (ValueError
        otherwise; an adapter that keeps one snapshot only raises StorageError for more).
        Afterwards `records()` never yields a position <= `position`, `last_position()` is
        unchanged and positions are never reused.
        """

    def snapshot_positions(self) -> list[int]:
        """Positions of the snapshots kept, oldest first."""
        snap = self.load_snapshot()
        return [] if snap is None else [snap[1]]

    def open_report(self) -> OpenReport:
        return OpenReport(records=self.last_position())

    def tail(self) -> Tail | None:
        """For a read-only open beside a writer in another process: the records it flushed
        since the previous call (see `Tail`). None: nothing to follow (a writable store, or
        an adapter without other writers)."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the store (idempotent). Every other method except last_position and
        open_report then raises ClosedError."""
