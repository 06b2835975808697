"""Following a store that another process writes: `FileStorage.tail()` for read-only opens.

A read-only FileStorage (an observer) never takes the writer's lock. `tail()` reads what
the writer appended since the observer's last look, with the rules of open (docs/STORAGE.md,
"Observers"):

- Only complete commit groups count (a flush is one group). Bytes after the last complete
  group are a flush in progress or a torn tail of a crashed writer: the observer waits for
  them (they complete, or the writer's next open cuts them), it never reads them.
- Damage followed by a complete group is corruption (it was durable before the later
  group was written): CorruptLogError naming segment and offset, after one re-read (a read
  racing with a write can see a write half-copied, never one that finished before it).
- A new segment whose first position follows the last record read continues the log (the
  writer rolled over, or compaction started a fresh segment). When the records after the
  last one read are gone (compaction deleted the segment first), or the active segment
  shrank (a repair), the storage reloads its view from the directory as at open (newest
  snapshot, then the log) and reports `reset`: the caller rebuilds from `load_snapshot()`
  and `records()`.

A mixin of FileStorage (its state is set there; recovery.py has the open rules reused here).
"""

from __future__ import annotations

from ..core.errors import CorruptLogError, StorageError
from . import logformat as lf
from .base import Tail
from .filestate import FileStorageState
from .fslayer import map_oserror

#: Reloads tried in one `tail()` call when the directory changes while it is being read
#: (a compaction deleting files between the listing and the read): each attempt sees a
#: newer state; a writer compacting that often is given until the next call.
RELOAD_ATTEMPTS = 3
#: Segments followed in one `tail()` call: bounds the work of one call when a writer rolls
#: over many small segments between two looks; the rest comes with the next call.
MAX_SEGMENTS_PER_TAIL = 64


class TailMixin(FileStorageState):
    """`tail()` of FileStorage (see the module docstring)."""

    _reload_wanted: bool = False   # a reload failed part-way: the next call starts with one

    def tail(self) -> Tail | None:
        """The data records another process flushed since open or the previous call, in
        position order, checked like at open; None for a writable store (it has no other
        writer to follow). Raises CorruptLogError for corruption, StorageError for I/O
        errors (the view is unchanged: call again)."""
        with self._mutex:
            self._check_open()
            if not self.read_only:
                return None
            if self._reload_wanted:
                return self._reload()
            out: list[tuple[int, bytes]] = []
            try:
                return self._tail_into(out)
            except StorageError:
                if out:   # the groups before the error are good: the next call reports it
                    return Tail(tuple(out))
                raise

    def _tail_into(self, out: list[tuple[int, bytes]]) -> Tail:
        for _ in range(MAX_SEGMENTS_PER_TAIL):
            listed = self._list_segments()
            active = self._segs[-1] if self._segs else None
            found = "none" if active is None else self._read_active(active, listed, out)
            if found == "reload":
                return self._reload()
            later = [f for f in listed if active is None or f > active]
            if not later:
                break
            nxt = self._durable_last + 1
            if later[0] == nxt and found in ("none", "missing", "end"):
                self._segs.append(nxt)
                self._seg_end = 0
                continue
            if found in ("none", "missing") or later[0] < nxt:
                return self._reload()   # records nxt.. were compacted away
            if found == "end":
                name = lf.segment_name(later[0])
                raise CorruptLogError(
                    f"records {nxt}..{later[0] - 1} are missing from {self._dir}: segment "
                    f"{lf.segment_name(active or 0)} ends at {nxt - 1} and {name} starts at {later[0]}",
                    segment=name, offset=0)
            raise self._corrupt(active or 0, self._seg_end,
                                "an incomplete group is followed by a newer segment")
        return Tail(tuple(out))

    # ---- helpers ---------------------------------------------------------------------------

    def _list_segments(self) -> list[int]:
        try:
            names = self._fs.listdir(self._dir)
        except OSError as exc:
            raise map_oserror(exc, "list", self._dir) from exc
        return sorted(f for f in map(lf.parse_segment_name, names) if f is not None)

    def _corrupt(self, first: int, offset: int, what: str) -> CorruptLogError:
        name = lf.segment_name(first)
        return CorruptLogError(f"{what} in {self._path(name)} at offset {offset} (seen while following "
                               "the writer); the writer's next open reports it too", segment=name,
                               offset=offset)

    def _read_new(self, first: int) -> bytes | None:
        """The active segment's bytes past the valid length read so far (b"" if none; None if
        the file is gone). A file shorter than that length raises _Shrunk."""
        path = self._path(lf.segment_name(first))
        try:
            handle = self._fs.open_read(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise map_oserror(exc, "read", path) from exc
        try:
            size = handle.size()
            if size < self._seg_end:
                raise _Shrunk()
            return handle.pread(self._seg_end, size - self._seg_end) if size > self._seg_end else b""
        except OSError as exc:
            raise map_oserror(exc, "read", path) from exc
        finally:
            handle.close()

    def _read_active(self, first: int, listed: list[int], out: list[tuple[int, bytes]]) -> str:
        """Take the complete groups appended to segment `first`: "end" (all of it read),
        "partial" (bytes of a group still being written follow), "missing" (the file is
        gone) or "reload" (it shrank: rewritten under us)."""
        for attempt in (0, 1):
            try:
                buf = self._read_new(first)
            except _Shrunk:
                return "reload"
            if buf is None:
                return "missing"
            state = self._take_groups(first, buf, out, confirm=attempt == 1)
            if state != "retry":
                return state
        return "partial"  # not reached: the second attempt never answers "retry"

    def _take_groups(self, first: int, buf: bytes, out: list[tuple[int, bytes]], *, confirm: bool) -> str:
        base = self._seg_end
        off = 0
        if base == 0:
            if len(buf) < lf.SEG_HEADER_SIZE:
                return "partial"   # the header is being written (a newer segment shows damage)
            if not lf.segment_header_ok(buf, first):
                return "retry" if not confirm else self._fail_header(first)
            off = lf.SEG_HEADER_SIZE
        mv = memoryview(buf)
        recs, stop = lf.walk(mv, off, len(buf), self._max_record, 1 << 62)
        last, in_group = self._durable_last, False
        g_data: list[tuple[int, bytes]] = []
        g_meta: dict[str, bytes] = {}
        g_floor: int | None = None
        committed_end = off
        bad_at: int | None = None
        for o, flags, kind, pos, start, nxt in recs:
            starts = bool(flags & lf.FLAG_START)
            if starts == in_group or pos != (last + 1 if kind == lf.KIND_DATA else last):
                bad_at = o
                break
            if starts:
                in_group, g_data, g_meta, g_floor = True, [], {}, None
            if kind == lf.KIND_DATA:
                last = pos
                g_data.append((pos, bytes(mv[start:nxt])))
            elif kind == lf.KIND_META:
                kv = lf.decode_meta(mv[start:nxt])
                if kv is None:
                    bad_at = o
                    break
                g_meta[kv[0]] = kv[1]
            elif nxt - start == 8:
                g_floor = int.from_bytes(mv[start:nxt], "big")
            else:
                bad_at = o
                break
            if flags & lf.FLAG_END:
                in_group = False
                committed_end = nxt
                out.extend(g_data)
                self._meta.update(g_meta)
                self._durable_last = self._last = last
                if g_floor is not None:
                    self._take_floor(g_floor)
        if bad_at is None and stop < len(buf):
            bad_at = stop
        self._seg_end = base + committed_end
        if bad_at is None and not in_group:
            return "end"
        damage = committed_end if bad_at is None else bad_at
        if bad_at is not None and lf.find_complete_group(mv, bad_at + 1, self._max_record):
            if not confirm:
                return "retry"   # read again from the committed end: it may have been in flight
            raise self._corrupt(first, base + damage, "damaged record followed by valid ones")
        return "partial"

    def _fail_header(self, first: int) -> str:
        raise self._corrupt(first, 0, "damaged segment header")

    def _take_floor(self, floor: int) -> None:
        self._floor = max(self._floor, floor)
        while len(self._segs) > 1 and self._segs[1] - 1 <= self._floor:
            del self._segs[0]

    def _reload(self) -> Tail:
        """Read the directory again as at open (read-only open touches no file); the caller
        rebuilds its state from the snapshot and records."""
        self._reload_wanted = True
        error: StorageError | None = None
        for _ in range(RELOAD_ATTEMPTS):
            self._segs, self._seg_end, self._durable_last, self._last = [], 0, 0, 0
            self._meta, self._floor, self._snaps, self._snap_cache = {}, 0, [], None
            self._truncated, self._quarantined, self._notes = 0, [], []
            try:
                self._open()
            except StorageError as exc:   # files changed between listing and reading: look again
                error = exc
                continue
            self._reload_wanted = False
            return Tail((), reset=True)
        assert error is not None
        raise error


class _Shrunk(Exception):
    """The active segment is shorter than what was already read from it."""
