"""In-memory storage: for tests and `ostracon.open()` without a path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..core.errors import ClosedError, StorageError
from .base import Storage


class MemoryStorage(Storage):
    def __init__(self) -> None:
        self._records: list[tuple[int, bytes]] = []
        self._last = 0
        self._snapshots: list[tuple[bytes, int]] = []
        self._meta: dict[str, bytes] = {}
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("storage is closed")

    def append(self, records: Sequence[bytes]) -> int:
        self._check()
        for rec in records:
            if not isinstance(rec, (bytes, bytearray, memoryview)):
                raise StorageError(f"records must be bytes, not {type(rec).__name__}")
            self._last += 1
            self._records.append((self._last, bytes(rec)))
        return self._last

    def flush(self) -> None:
        self._check()

    def records(self, after: int = 0) -> Iterator[tuple[int, bytes]]:
        self._check()
        for pos, rec in list(self._records):
            if pos > after:
                yield pos, rec

    def last_position(self) -> int:
        return self._last

    def write_snapshot(self, data: bytes, position: int) -> None:
        self._check()
        if not 0 <= position <= self._last:
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
        self._meta[key] = bytes(value)

    def compact(self, position: int) -> None:
        self._check()
        self._records = [(p, r) for p, r in self._records if p > position]
        self._snapshots = [s for s in self._snapshots if s[1] >= position][-1:] or self._snapshots[-1:]

    def close(self) -> None:
        self._closed = True
