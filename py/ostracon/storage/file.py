"""Native file storage: append-only log segments, atomic snapshots, crash recovery.

Layout, durability modes and recovery rules: docs/STORAGE.md. Byte formats: logformat.py.
All disk access goes through an injectable file layer (fslayer.OsFileLayer by default), so
tests can simulate crashes, full disks and permission errors.

Threading: one lock serialises writers; reads take it only to capture a consistent view,
then stream from disk and from the in-memory queue of unflushed records, never waiting
for a flush to finish.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..core.errors import (
    ClosedError,
    CorruptLogError,
    ReadOnlyError,
    StorageError,
    StorageFailedError,  # noqa: F401  (re-exported)
)
from . import logformat as lf
from .base import OpenReport, Storage, check_keep, check_meta
from .fslayer import OsFileLayer, map_oserror
from .recovery import RecoveryMixin
from .tail import TailMixin

# A new segment starts once the active one would grow past this. Bounds the work of every
# open (the last segment is scanned in full) and the unit compaction can delete.
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
# Refuse larger records: a record is read into memory whole, and a garbage length field
# must never make recovery allocate gigabytes.
DEFAULT_MAX_RECORD_BYTES = 256 * 1024 * 1024
# records() streams segments in reads of this size (one syscall per ~thousands of records).
READ_CHUNK_BYTES = 1024 * 1024
DURABILITY_MODES = ("always", "flush", "none")

_T = TypeVar("_T")


class StagedSnapshot:
    """A snapshot written and synced to a temporary file (`FileStorage.stage_snapshot`), not
    yet the store's: `path` of the file, `position` it covers."""

    __slots__ = ("path", "position")

    def __init__(self, path: str, position: int) -> None:
        self.path, self.position = path, position


class FileStorage(RecoveryMixin, TailMixin, Storage):
    """A directory of `seg-<first position>.log` segments and `snap-<seq>.snap` snapshots."""

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "flush",
                 read_only: bool = False, repair: bool = False,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, fs: OsFileLayer | None = None) -> None:
        if durability not in DURABILITY_MODES:
            raise StorageError(f"durability must be one of {DURABILITY_MODES}, not {durability!r}")
        if read_only and repair:
            raise StorageError("repair=True needs write access; it cannot be combined with read_only=True")
        if segment_bytes < 64 or max_record_bytes < 1:
            raise StorageError("segment_bytes must be >= 64 and max_record_bytes >= 1")
        self._dir = os.fspath(path)
        self._fs = fs if fs is not None else OsFileLayer()
        self._durability = durability
        self._sync = durability != "none"
        self.read_only = read_only
        self._repair = repair
        self._segment_bytes = segment_bytes
        self._max_record = max_record_bytes
        self._mutex = threading.RLock()
        self._lock = None
        self._writer = None
        self._closed = False
        self._failed: str | None = None
        self._segs: list[int] = []          # first position of each segment, ascending
        self._seg_end = 0                    # valid length of the active (last) segment
        self._durable_last = 0               # last position written to the log
        self._last = 0                       # last position appended (incl. queued)
        self._pending: list[tuple[int, int, bytes]] = []  # queued (kind, position, payload)
        self._meta: dict[str, bytes] = {}
        self._floor = 0                      # records <= floor were compacted away
        self._snaps: list[tuple[int, int]] = []  # (seq, position) ascending by seq
        self._snap_cache: tuple[bytes, int] | None = None
        self._stage_seq = 0                  # the last sequence number a staged snapshot took
        self._truncated = 0
        self._quarantined: list[str] = []
        self._notes: list[str] = []
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    # ---- helpers -------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self._dir, name)

    def _io(self, fn: Callable[..., _T], what: str, path: str, *args: Any) -> _T:
        try:
            return fn(*args)
        except OSError as exc:
            raise map_oserror(exc, what, path) from exc

    def _sync_dir(self, path: str | None = None) -> None:
        if self._sync:
            path = path or self._dir
            self._io(self._fs.fsync_dir, "fsync directory", path, path)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"storage {self._dir} is closed")

    def _check_write(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"storage {self._dir} was opened read-only")
        if self._failed:
            raise StorageFailedError(self._failed)

    def _fail(self, err: StorageError) -> StorageError:
        self._failed = (f"storage {self._dir} failed earlier and refuses writes until reopened "
                        f"(nothing acknowledged is lost): {err}")
        return err

    def _release(self) -> None:
        for handle, close in ((self._writer, "close"), (self._lock, "release")):
            if handle is not None:
                try:
                    getattr(handle, close)()
                except OSError:
                    pass  # closing can only fail for already-broken descriptors
        self._writer = self._lock = None

    # ---- writing -------------------------------------------------------------------------

    def _new_segment(self, first: int, data: bytes) -> None:
        """Create seg-<first> = header + checkpoint group (all meta + floor), durably, then
        append `data`. The checkpoint makes every segment self-sufficient: meta and floor are
        read from the last segment alone, and compaction may delete any older one. It is
        synced on its own, as is the header, so that a crash can tear only the last write of
        a file: damage followed by a complete group then always means corruption."""
        checkpoint = [(lf.KIND_META, first - 1, lf.encode_meta(k, v)) for k, v in sorted(self._meta.items())]
        checkpoint.append((lf.KIND_FLOOR, first - 1, lf.encode_floor(self._floor)))
        header, group = lf.encode_segment_header(first), lf.encode_group(checkpoint)
        path = self._path(lf.segment_name(first))
        try:
            handle = self._fs.open_write(path, create=True, exclusive=True)
        except OSError as exc:
            raise map_oserror(exc, "create segment", path) from exc
        try:
            for part in (header, group):  # synced apart: see the docstring
                handle.write(part)
                if self._sync:
                    handle.fsync()
        except OSError as exc:
            err = map_oserror(exc, "write segment", path)
            try:
                handle.close()
                self._fs.remove(path)  # never acknowledged; leave the previous segment active
            except OSError:
                raise self._fail(err) from exc
            raise err from exc
        try:
            self._sync_dir()
        except StorageError as err:
            handle.close()
            raise self._fail(err) from None
        if self._writer is not None:
            self._writer.close()
        self._writer = handle
        self._segs.append(first)
        self._seg_end = len(header) + len(group)
        if data:
            self._append_bytes(data)

    def _append_bytes(self, data: bytes) -> None:
        path = self._path(lf.segment_name(self._segs[-1]))
        assert self._writer is not None  # read-only storage refuses writes before this point
        try:
            self._writer.write(data)
        except OSError as exc:
            err = map_oserror(exc, "write", path)
            try:  # undo the partial write so the file still ends on a group boundary
                self._writer.truncate(self._seg_end)
            except OSError:
                raise self._fail(err) from exc
            raise err from exc  # still usable: the batch stays queued and flush() can retry
        if self._sync:
            try:
                self._writer.fsync()
            except OSError as exc:
                # After a failed fsync the kernel may have dropped the dirty pages: retrying
                # could report success for data that is gone, so stop here.
                raise self._fail(map_oserror(exc, "fsync", path)) from exc
        self._seg_end += len(data)

    def _write_pending(self) -> None:
        data = lf.encode_group(self._pending)
        has_records = self._durable_last >= self._segs[-1]
        if has_records and self._seg_end + len(data) > self._segment_bytes:
            if self._sync:  # the old segment must be complete on disk before the next exists
                assert self._writer is not None
                try:
                    self._writer.fsync()
                except OSError as exc:
                    raise self._fail(map_oserror(exc, "fsync", self._path(lf.segment_name(self._segs[-1])))) from exc
            self._new_segment(self._durable_last + 1, data)
        else:
            self._append_bytes(data)
        self._durable_last = self._last
        self._pending = []

    def append(self, records: Sequence[bytes]) -> int:
        with self._mutex:
            self._check_write()
            items, pos = [], self._last
            for rec in records:
                if not isinstance(rec, (bytes, bytearray, memoryview)):
                    raise StorageError(f"records must be bytes, not {type(rec).__name__}")
                rec = bytes(rec)
                if len(rec) > self._max_record:
                    raise StorageError(f"record of {len(rec)} bytes exceeds max_record_bytes={self._max_record}")
                pos += 1
                items.append((lf.KIND_DATA, pos, rec))
            self._pending.extend(items)
            self._last = pos
            if self._durability == "always" and self._pending:
                self._write_pending()
            return self._last

    def flush(self) -> None:
        with self._mutex:
            self._check_open()
            if self._failed:
                raise StorageFailedError(self._failed)
            if self._pending:
                self._write_pending()

    def set_meta(self, key: str, value: bytes) -> None:
        with self._mutex:
            self._check_write()
            value = check_meta(key, value)
            self._meta[key] = value
            self._pending.append((lf.KIND_META, self._last, lf.encode_meta(key, value)))
            if self._durability == "always":
                self._write_pending()

    def get_meta(self, key: str) -> bytes | None:
        with self._mutex:
            self._check_open()
            return self._meta.get(key)

    def last_position(self) -> int:
        return self._last

    # ---- reading -------------------------------------------------------------------------

    def records(self, after: int = 0) -> Iterator[tuple[int, bytes]]:
        with self._mutex:
            self._check_open()
            after = max(after, self._floor)
            view = (list(self._segs), self._seg_end, self._durable_last)
            queued = [(p, r) for k, p, r in self._pending if k == lf.KIND_DATA and p > after]
        return self._iter(view, after, queued)

    def _iter(self, view: tuple[list[int], int, int], after: int,
              queued: list[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        segs, end, durable_last = view
        if after < durable_last and segs:
            for j in range(max(bisect_right(segs, after + 1) - 1, 0), len(segs)):
                is_last = j == len(segs) - 1
                seg_last = durable_last if is_last else segs[j + 1] - 1
                if seg_last > after:
                    yield from self._read_segment(segs[j], after, end if is_last else None, seg_last)
        yield from queued

    def _read_segment(self, first: int, after: int, end: int | None, seg_last: int) -> Iterator[tuple[int, bytes]]:
        name = lf.segment_name(first)
        path = self._path(name)

        def corrupt(offset: int, what: str) -> CorruptLogError:
            return CorruptLogError(f"{what} in {path} at offset {offset}; open with repair=True to "
                                   "quarantine the damaged part", segment=name, offset=offset)
        try:
            handle = self._fs.open_read(path)
        except OSError as exc:
            raise map_oserror(exc, "read", path) from exc
        try:
            if end is None:
                end = handle.size()
            buf, base = handle.pread(0, min(end, READ_CHUNK_BYTES)), 0
            if not lf.segment_header_ok(buf, first):
                raise corrupt(0, "damaged segment header")
            off, last, in_group = lf.SEG_HEADER_SIZE, first - 1, False
            mv = memoryview(buf)
            while off < end:
                recs, stop = lf.walk(mv, off - base, len(buf), self._max_record, 1 << 62)
                for o, flags, kind, pos, start, nxt in recs:
                    if (bool(flags & lf.FLAG_START) == in_group
                            or pos != (last + 1 if kind == lf.KIND_DATA else last)):
                        raise corrupt(base + o, "out-of-order record")
                    in_group = not flags & lf.FLAG_END
                    if kind == lf.KIND_DATA:
                        last = pos
                        if pos > after:
                            yield pos, bytes(mv[start:nxt])
                off = base + stop
                if off >= end:
                    break
                # walk stopped inside the buffer: either the next record runs past what we
                # read (read more) or it is damaged.
                need = lf.REC_HEADER_SIZE
                if stop + need <= len(buf):
                    need += int.from_bytes(buf[stop + 8:stop + 12], "big")
                    if stop + need <= len(buf) or need > self._max_record + lf.REC_HEADER_SIZE:
                        raise corrupt(off, "damaged record")
                if off + need > end:
                    raise corrupt(off, "truncated record")
                buf, base = handle.pread(off, max(need, min(end - off, READ_CHUNK_BYTES))), off
                mv = memoryview(buf)
                if len(buf) < need:
                    raise corrupt(off, "truncated segment")
            if in_group or last != seg_last:
                raise corrupt(off, f"segment ends at position {last}, expected {seg_last}")
        except OSError as exc:
            raise map_oserror(exc, "read", path) from exc
        finally:
            handle.close()

    def locate(self, position: int) -> tuple[str, int | None]:
        """(segment file name, byte offset of the record) of a data record, for error
        messages that name where a bad block is stored. Reads the one segment holding it."""
        with self._mutex:
            self._check_open()
            segs = list(self._segs)
        j = bisect_right(segs, position) - 1
        if j < 0:
            return ("(compacted)", None)
        name = lf.segment_name(segs[j])
        buf = self._read_all(name)
        recs, _ = lf.walk(memoryview(buf), lf.SEG_HEADER_SIZE, len(buf), self._max_record, 1 << 62)
        for off, _flags, kind, pos, _start, _nxt in recs:
            if kind == lf.KIND_DATA and pos == position:
                return (name, off)
        return (name, None)

    def verify(self) -> int:
        """Read and check every record (all segments, not just the last); return the count."""
        return sum(1 for _ in self.records())

    # ---- snapshots and compaction ----------------------------------------------------------

    def write_snapshot(self, data: bytes, position: int) -> None:
        """Flush what is queued, then store the snapshot atomically (`stage_snapshot`, then
        `commit_snapshot`): the file is written and synced outside the lock, so appends and
        flushes of other threads go on meanwhile."""
        with self._mutex:
            self._check_write()
            if self._pending:  # a snapshot must never cover records that are not on disk
                self._write_pending()
        self.commit_snapshot(self.stage_snapshot(data, position))

    def stage_snapshot(self, data: bytes, position: int) -> StagedSnapshot:
        """Write the snapshot covering records 1..`position` to a temporary file and sync it,
        holding the lock only to check `position` and name the file; `commit_snapshot` then
        makes it the newest snapshot, `discard_snapshot` drops it. Records up to `position`
        must already be durable (StorageError otherwise): the snapshot must never cover
        records that are not on disk. A crash before the commit leaves the temporary file,
        removed at the next open (never acknowledged)."""
        with self._mutex:
            self._check_write()
            if not isinstance(position, int) or not 0 <= position <= self._last:
                raise StorageError(f"snapshot position {position} outside 0..{self._last}")
            if position > self._durable_last:
                raise StorageError(f"snapshot position {position} covers records not yet flushed "
                                   f"(durable up to {self._durable_last})")
            self._stage_seq = max(self._stage_seq, max((s for s, _ in self._snaps), default=0)) + 1
            tmp = self._path(lf.snapshot_name(self._stage_seq) + ".tmp")
        blob = lf.encode_snapshot(bytes(data), position)
        try:
            handle = self._fs.open_write(tmp, create=True, exclusive=True)
            try:
                handle.write(blob)
                if self._sync:
                    handle.fsync()
            finally:
                handle.close()
        except OSError as exc:
            self._remove_quietly(tmp)
            raise map_oserror(exc, "write snapshot", tmp) from exc
        return StagedSnapshot(tmp, position)

    def commit_snapshot(self, staged: StagedSnapshot) -> None:
        """Make a staged snapshot the newest (a rename and a directory sync, under the lock).
        StorageError, and the file is dropped, when a snapshot covering more was stored
        meanwhile or the log was compacted past it (it would hide what they cover)."""
        with self._mutex:
            try:
                self._check_write()
                newest = max((p for _, p in self._snaps), default=0)
                if staged.position < max(newest, self._floor):
                    raise StorageError(f"snapshot at {staged.position} is superseded: the store already "
                                       f"covers {max(newest, self._floor)}")
            except StorageError:
                self._remove_quietly(staged.path)
                raise
            seq = max((s for s, _ in self._snaps), default=0) + 1
            final = self._path(lf.snapshot_name(seq))
            try:
                self._fs.rename(staged.path, final)
            except OSError as exc:
                self._remove_quietly(staged.path)
                raise map_oserror(exc, "write snapshot", final) from exc
            self._snaps.append((seq, staged.position))
            self._snap_cache = None
            self._sync_dir()

    def discard_snapshot(self, staged: StagedSnapshot) -> None:
        """Drop a staged snapshot that will not be committed."""
        self._remove_quietly(staged.path)

    def _remove_quietly(self, path: str) -> None:
        try:
            self._fs.remove(path)
        except OSError:
            pass  # gone already, or removed at the next open

    def load_snapshot(self) -> tuple[bytes, int] | None:
        with self._mutex:
            self._check_open()
            if self._snap_cache is not None:
                cached, self._snap_cache = self._snap_cache, None  # held only until the engine asks
                return cached
            return self._load_valid_snapshot()

    def snapshot_positions(self) -> list[int]:
        with self._mutex:
            return [p for _, p in self._snaps]

    def compact(self, position: int, keep_snapshots: int = 1) -> None:
        check_keep(keep_snapshots)
        with self._mutex:
            self._check_write()
            if not 0 <= position <= self._last:
                raise StorageError(f"compact position {position} outside 0..{self._last}")
            newest = max((p for _, p in self._snaps), default=0)
            if newest < position:
                raise StorageError(f"compact({position}) needs a snapshot covering position {position}; "
                                   f"the newest covers {newest}")
            if self._pending:  # compact always leaves everything appended so far durable
                self._write_pending()
            # Older snapshots covered by the newest are dropped even when the floor does not
            # move (compacting twice must not keep two snapshots: the store would grow),
            # except the newest `keep_snapshots` (kept for audit).
            for seq, pos in list(self._snaps[:-keep_snapshots]):
                if pos <= position:
                    path = self._path(lf.snapshot_name(seq))
                    self._io(self._fs.remove, "remove", path, path)
                    self._snaps.remove((seq, pos))
            if position <= self._floor:
                self._sync_dir()
                return
            self._floor = position
            if self._segs[-1] <= self._durable_last <= position:
                self._new_segment(self._durable_last + 1, b"")  # roll: the old one is all covered
            else:
                self._append_bytes(lf.encode_group([(lf.KIND_FLOOR, self._durable_last, lf.encode_floor(position))]))
            while len(self._segs) > 1 and self._segs[1] - 1 <= position:
                path = self._path(lf.segment_name(self._segs[0]))
                self._io(self._fs.remove, "remove", path, path)
                del self._segs[0]
            self._sync_dir()

    # ---- reporting and closing --------------------------------------------------------------

    def open_report(self) -> OpenReport:
        snap = self._snaps[-1][1] if self._snaps else 0
        return OpenReport(records=self._last - self._floor, snapshot_position=max(snap, 0),
                          truncated_bytes=self._truncated, quarantined=tuple(self._quarantined),
                          notes=tuple(self._notes))

    def describe(self) -> dict:
        """Files and sizes (for `ostracon inspect`)."""
        with self._mutex:
            self._check_open()

            def size(name: str) -> int:
                return self._io(self._fs.size, "stat", self._path(name), self._path(name))
            return {
                "path": self._dir, "durability": self._durability, "last_position": self._last,
                "floor": self._floor,
                "segments": [(lf.segment_name(s), size(lf.segment_name(s))) for s in self._segs],
                "snapshots": [(lf.snapshot_name(q), p, size(lf.snapshot_name(q))) for q, p in self._snaps],
            }

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            try:
                if not self.read_only and not self._failed and self._pending:
                    self._write_pending()
            finally:
                self._closed = True
                self._pending = []
                self._snap_cache = None
                self._release()

    def __enter__(self) -> FileStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
