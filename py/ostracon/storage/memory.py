"""In-memory storage: for tests and `ostracon.open()` without a path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..core.errors import ClosedError, StorageError
from .base import Storage, check_meta


class MemoryStorage(Storage):
    def __init__(self) -> None:
        self._records: list[bytes] = []   # positions _first .. _last, contiguous
        self._first = 1                   # position of _records[0]
        self._last = 0
        self._snapshots: list[tuple[bytes, int]] = []
        self._meta: dict[str, bytes] = {}
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("storage is closed")

    def append(self, records: Sequence[bytes]) -> int:
        self._check()
        batch = []
        for rec in records:  # validate the whole batch first: all or nothing
            if not isinstance(rec, (bytes, bytearray, memoryview)):
                raise StorageError(f"records must be bytes, not {type(rec).__name__}")
            batch.append(bytes(rec))
        self._records.extend(batch)
        self._last += len(batch)
        return self._last

    def flush(self) -> None:
        self._check()

    def records(self, after: int = 0) -> Iterator[tuple[int, bytes]]:
        self._check()
        start = max(after + 1, self._first)
        # Slicing copies the references: the reader sees the records present right now.
        return zip(range(start, self._last + 1), self._records[start - self._first:], strict=False)

    def last_position(self) -> int:
        return self._last

    def write_snapshot(self, data: bytes, position: int) -> None:
        self._check()
        if not isinstance(position, int) or not 0 <= position <= self._last:
            raise StorageError(f"snapshot position {position} outside 0..{self._last}")
        self._snapshots.append((bytes(data), position))

    def load_snapshot(self) -> tuple[bytes, int] | None:
        self._check()
        return self._snapshots[-1] if self._snapshots else None

    def get_meta(self, key: str) -> bytes | None:
        self._check()
        return self._meta.get(key)

    def set_meta(self, key: str, value: bytes) -> None:
        self._check()
        self._meta[key] = check_meta(key, value)

    def compact(self, position: int) -> None:
        self._check()
        if not 0 <= position <= self._last:
            raise StorageError(f"compact position {position} outside 0..{self._last}")
        newest = max((p for _, p in self._snapshots), default=0)
        if newest < position:
            raise StorageError(f"compact({position}) needs a snapshot covering position {position}; "
                               f"the newest covers {newest}")
        if position >= self._first:
            del self._records[:position + 1 - self._first]
            self._first = position + 1
        self._snapshots = [s for s in self._snapshots[:-1] if s[1] >= position] + self._snapshots[-1:]

    def close(self) -> None:
        self._closed = True
