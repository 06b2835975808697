"""The SQLite mailbox backend (one file, WAL): see mailbox.py for the contract."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LockedError, MailboxError, StorageUnavailableError
from . import mailbox as _mb
from .files import create_private
from .mailbox import DEFAULT_READ_LIMIT, FRAME_OVERHEAD_BYTES, Mailbox, MailboxStats, RoomInfo, _check_room, _new_epoch
from .sqlite_checks import check_schema, quarantine_bad_rows

log = logging.getLogger("ostracon.relay.mailbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rooms (
  room TEXT PRIMARY KEY,
  epoch TEXT NOT NULL,
  head INTEGER NOT NULL,
  pruned_through INTEGER NOT NULL,
  last_ts REAL NOT NULL,
  last_active REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS frames (
  room TEXT NOT NULL,
  cursor INTEGER NOT NULL,
  ts REAL NOT NULL,
  size INTEGER NOT NULL,
  data BLOB NOT NULL,
  writer TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (room, cursor)
);
CREATE INDEX IF NOT EXISTS frames_ts ON frames (ts);
"""
# Version 1 files lack frames.writer: they are migrated in place (their frames get writer '').
_SCHEMA_VERSION = "2"
# Created after the migration, since version 1 tables have no writer column. Covering, so the
# per-writer byte totals of one room are an index range scan.
_WRITER_INDEX = "CREATE INDEX IF NOT EXISTS frames_writer ON frames (room, writer, cursor, size)"
# The oldest frames of one writer over all rooms (eviction under max_total_bytes); rowid, the
# tie-break, is part of every index entry.
_WRITER_TS_INDEX = "CREATE INDEX IF NOT EXISTS frames_writer_ts ON frames (writer, ts)"


@dataclass
class _SqlRoom:
    epoch: str
    head: int
    pruned_through: int
    frames: int
    bytes: int
    last_ts: float
    last_active: float


class SqliteMailbox(Mailbox):
    """Mailbox in one SQLite file (WAL, ``synchronous=NORMAL``: a killed relay loses nothing it
    acknowledged; a power cut may lose the last moments, never corrupts).

    One connection, guarded by a lock so an embedding application may hand the mailbox to a
    loop running in another thread. ``locking_mode=EXCLUSIVE`` stops a second relay process
    from using the same file (it gets ``LockedError``).
    """

    def __init__(self, path: str | Path, **limits: object):
        super().__init__(**limits)  # type: ignore[arg-type]
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StorageUnavailableError(f"mailbox directory does not exist: {self.path.parent}")
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, _SqlRoom] = OrderedDict()
        create_private(self.path)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageUnavailableError(f"cannot open mailbox {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA busy_timeout=0")
            # SQL functions with side effects never run from schema objects found in the file.
            self._db.execute("PRAGMA trusted_schema=OFF")
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise MailboxError(f"mailbox {self.path}: WAL mode unavailable ({mode})")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._tx():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                row = self._db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
                elif row[0] == "1":
                    self._db.execute("ALTER TABLE frames ADD COLUMN writer TEXT NOT NULL DEFAULT ''")
                    self._db.execute("UPDATE meta SET v=? WHERE k='schema'", (_SCHEMA_VERSION,))
                elif row[0] != _SCHEMA_VERSION:
                    raise MailboxError(f"mailbox {self.path}: unknown schema version {row[0]}")
                self._db.execute(_WRITER_INDEX)
                self._db.execute(_WRITER_TS_INDEX)
                check_schema(self._db, self.path)
                self._dropped["quarantined"] = quarantine_bad_rows(self._db, self.max_room_bytes, self.clock())
            if self._dropped["quarantined"]:
                log.warning("mailbox %s: %d malformed frames moved to quarantined_frames",
                            self.path, self._dropped["quarantined"])
            self._count_totals()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise LockedError(f"mailbox {self.path} is in use by another process") from exc
            raise MailboxError(f"mailbox {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:   # e.g. "file is not a database": someone else's file
            self._db.close()
            raise MailboxError(f"mailbox {self.path} is not a usable SQLite mailbox: {exc}") from exc
        except BaseException:
            self._db.close()
            raise
        self._closed = False

    # A context manager for one write transaction (BEGIN IMMEDIATE ... COMMIT / ROLLBACK).
    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> None:
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, *rest: object) -> None:
            if exc_type is None:
                self.db.execute("COMMIT")
            else:
                self.db.execute("ROLLBACK")

    def _tx(self) -> SqliteMailbox._Tx:
        return SqliteMailbox._Tx(self._db)

    def _resync(self) -> None:
        """After a rolled-back transaction the cached rows may hold uncommitted values: reload."""
        self._cache.clear()
        try:
            self._count_totals()
        except sqlite3.Error:
            pass  # the next operation reports the failure

    def _check_open(self) -> None:
        if self._closed:
            raise MailboxError("mailbox is closed")

    def _count_totals(self) -> None:
        self._total, self._total_frames = self._db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM frames").fetchone()
        self._writer_bytes: dict[str, int] = dict(
            self._db.execute("SELECT writer, SUM(size) FROM frames GROUP BY writer").fetchall())

    def _writer_lost(self, writer: str, size: int) -> None:
        left = self._writer_bytes.get(writer, 0) - size
        if left > 0:
            self._writer_bytes[writer] = left
        else:
            self._writer_bytes.pop(writer, None)

    def _load(self, room: str) -> _SqlRoom | None:
        """Cached room state. The rooms row is only written when a room is created or pruned
        (one table write per append instead of two); head, sizes and last timestamps are
        recomputed from the frames table when a room is first loaded."""
        r = self._cache.get(room)
        if r is not None:
            self._cache.move_to_end(room)
        else:
            row = self._db.execute("SELECT epoch, head, pruned_through, last_ts, last_active FROM rooms WHERE room=?",
                                   (room,)).fetchone()
            if row is not None:
                epoch, head, pruned_through, last_ts, last_active = row
                n, size, max_cursor, max_ts = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0), MAX(cursor), MAX(ts) FROM frames WHERE room=?",
                    (room,)).fetchone()
                last_ts = max(last_ts, max_ts or last_ts)
                r = self._cache[room] = _SqlRoom(epoch, max(head, max_cursor or 0), pruned_through, n, size,
                                                 last_ts, max(last_active, last_ts))
                self._trim_cache()
        return r

    def _trim_cache(self) -> None:
        # Safe to forget any record: the rows table plus the frames table rebuild it (_load),
        # and every prune writes the rooms row before the transaction ends.
        while len(self._cache) > _mb.MAX_CACHED_ROOMS:
            self._cache.popitem(last=False)

    def _save(self, room: str, r: _SqlRoom) -> None:
        self._db.execute("INSERT OR REPLACE INTO rooms VALUES (?,?,?,?,?,?)",
                         (room, r.epoch, r.head, r.pruned_through, r.last_ts, r.last_active))

    def _create(self, room: str, now: float) -> _SqlRoom:
        r = _SqlRoom(_new_epoch(), 0, 0, 0, 0, now, now)
        self._save(room, r)
        self._cache[room] = r
        self._trim_cache()
        return r

    def _drop_prefix(self, room: str, r: _SqlRoom, through: int, reason: str) -> int:
        """Delete frames with cursor <= through; return how many."""
        n = size = 0
        for writer, count, held in self._db.execute(
                "SELECT writer, COUNT(*), SUM(size) FROM frames WHERE room=? AND cursor<=? GROUP BY writer",
                (room, through)).fetchall():
            n, size = n + count, size + held
            self._writer_lost(writer, held)
        self._db.execute("DELETE FROM frames WHERE room=? AND cursor<=?", (room, through))
        r.frames -= n
        r.bytes -= size
        self._total -= size
        self._total_frames -= n
        r.pruned_through = max(r.pruned_through, through)
        self._dropped[reason] += n
        return n

    def append(self, room: str, frame: bytes, writer: str = "") -> int:
        self._check_frame(room, frame, writer)
        frame = bytes(frame)
        with self._lock:
            self._check_open()
            now = self.clock()
            try:
                with self._tx():
                    r = self._load(room) or self._create(room, now)
                    r.head += 1
                    r.last_ts = max(r.last_ts, now)
                    r.last_active = now
                    size = len(frame) + FRAME_OVERHEAD_BYTES
                    self._db.execute("INSERT INTO frames VALUES (?,?,?,?,?,?)",
                                     (room, r.head, r.last_ts, size, frame, writer))
                    r.frames += 1
                    r.bytes += size
                    self._total += size
                    self._writer_bytes[writer] = self._writer_bytes.get(writer, 0) + size
                    self._total_frames += 1
                    pruned = self._expire_room(room, r, now)
                    while r.bytes > self.max_room_bytes:
                        pruned += self._drop_heaviest(room, r, r.bytes - self.max_room_bytes)
                    if pruned:
                        self._save(room, r)  # pruned_through must survive a restart
                    if self._total > self.max_total_bytes:
                        self._evict_global(self._total - self.max_total_bytes)
                    cursor = r.head
            except sqlite3.Error as exc:
                self._resync()
                raise MailboxError(f"mailbox append failed: {exc}") from exc
            return cursor

    def _drop_heaviest(self, room: str, r: _SqlRoom, excess: int) -> int:
        """Drop the oldest frames of the writer holding the most bytes in ``room`` (ties: the
        writer whose oldest frame is oldest) until ``excess`` bytes are freed or it stops being
        the heaviest; return how many were dropped."""
        top = self._db.execute(
            "SELECT writer, SUM(size) AS held FROM frames WHERE room=? GROUP BY writer "
            "ORDER BY held DESC, MIN(cursor) LIMIT 2", (room,)).fetchall()
        if not top:
            raise MailboxError("room byte accounting is inconsistent")  # pragma: no cover
        writer, held = top[0]
        runner_up = top[1][1] if len(top) > 1 else 0
        cut: list[int] = []
        freed = 0
        for cursor, size in self._db.execute(
                "SELECT cursor, size FROM frames WHERE room=? AND writer=? ORDER BY cursor", (room, writer)):
            cut.append(cursor)
            freed += size
            if freed >= excess or held - freed <= runner_up:
                break
        self._db.executemany("DELETE FROM frames WHERE room=? AND cursor=?", [(room, c) for c in cut])
        self._writer_lost(writer, freed)
        r.frames -= len(cut)
        r.bytes -= freed
        self._total -= freed
        self._total_frames -= len(cut)
        r.pruned_through = max(r.pruned_through, cut[-1])
        self._dropped["room_bytes"] += len(cut)
        return len(cut)

    def _expire_room(self, room: str, r: _SqlRoom, now: float) -> int:
        # Cheap check first (primary-key lookup of the oldest frame) so appends stay O(log n).
        first = self._db.execute("SELECT ts FROM frames WHERE room=? ORDER BY cursor LIMIT 1", (room,)).fetchone()
        if first is None or first[0] >= now - self.max_age_s:
            return 0
        row = self._db.execute("SELECT MAX(cursor) FROM frames WHERE room=? AND ts<?",
                               (room, now - self.max_age_s)).fetchone()
        if row[0] is None:
            return 0
        return self._drop_prefix(room, r, row[0], "age")

    def _evict_global(self, excess: int) -> None:
        """Drop the oldest frames of the writer holding the most bytes over all rooms (ties: the
        writer whose oldest frame is oldest) until ``excess`` bytes are freed, a round at a time
        while it stays the heaviest. rowid breaks timestamp ties by append order."""
        while excess > 0 and self._writer_bytes:
            most = max(self._writer_bytes.values())
            runner_up = max((held for held in self._writer_bytes.values() if held < most), default=0)
            oldest = min(self._db.execute("SELECT ts, rowid, writer FROM frames WHERE writer=? ORDER BY ts, rowid "
                                          "LIMIT 1", (w,)).fetchone() or (float("inf"), 0, w)
                         for w, held in self._writer_bytes.items() if held == most)
            writer = oldest[2]
            rows = self._db.execute("SELECT room, cursor, size FROM frames WHERE writer=? ORDER BY ts, rowid LIMIT 256",
                                    (writer,)).fetchall()
            if not rows:
                raise MailboxError("writer byte accounting is inconsistent")  # pragma: no cover
            rooms: dict[str, list[tuple[int, int]]] = {}
            freed = 0
            for room, cursor, size in rows:
                rooms.setdefault(room, []).append((cursor, size))
                freed += size
                if freed >= excess or most - freed <= runner_up:
                    break
            for room, cut in rooms.items():
                r = self._load(room)
                assert r is not None
                self._db.executemany("DELETE FROM frames WHERE room=? AND cursor=?", [(room, c) for c, _ in cut])
                size = sum(n for _, n in cut)
                r.frames -= len(cut)
                r.bytes -= size
                r.pruned_through = max(r.pruned_through, max(c for c, _ in cut))
                self._save(room, r)
            self._writer_lost(writer, freed)
            self._total -= freed
            self._total_frames -= sum(len(cut) for cut in rooms.values())
            self._dropped["total_bytes"] += sum(len(cut) for cut in rooms.values())
            excess -= freed

    def read(self, room: str, after: int, limit: int = DEFAULT_READ_LIMIT,
             max_bytes: int | None = None) -> list[tuple[int, bytes]]:
        self._check_read(room, after, limit, max_bytes)
        with self._lock:
            self._check_open()
            try:
                rows = self._db.execute(
                    "SELECT cursor, data FROM frames WHERE room=? AND cursor>? ORDER BY cursor LIMIT ?",
                    (room, after, limit)).fetchall()
            except sqlite3.Error as exc:
                raise MailboxError(f"mailbox read failed: {exc}") from exc
        out: list[tuple[int, bytes]] = []
        size = 0
        for cursor, data in rows:
            if out and max_bytes is not None and size + len(data) > max_bytes:
                break
            out.append((cursor, bytes(data)))
            size += len(data)
        return out

    def info(self, room: str, *, create: bool = False) -> RoomInfo:
        _check_room(room)
        with self._lock:
            self._check_open()
            try:
                r = self._load(room)
                if r is None and create:
                    with self._tx():
                        r = self._create(room, self.clock())
                first = self._db.execute("SELECT MIN(cursor) FROM frames WHERE room=?", (room,)).fetchone()[0]
            except sqlite3.Error as exc:
                self._cache.pop(room, None)
                raise MailboxError(f"mailbox info failed: {exc}") from exc
            if r is None:
                return RoomInfo(room, None, 0, 0, 0, 0)
            return RoomInfo(room, r.epoch, r.head, r.pruned_through, r.frames, r.bytes, first or 0)

    def discard_if_empty(self, room: str) -> bool:
        with self._lock:
            self._check_open()
            r = self._load(room)
            if r is None or r.head != 0:
                return False
            try:
                with self._tx():
                    self._db.execute("DELETE FROM rooms WHERE room=?", (room,))
            except sqlite3.Error as exc:
                raise MailboxError(f"mailbox discard failed: {exc}") from exc
            finally:
                self._cache.pop(room, None)
            return True

    def prune(self, keep: Collection[str] = ()) -> int:
        with self._lock:
            self._check_open()
            now = self.clock()
            n = 0
            try:
                with self._tx():
                    expired = self._db.execute("SELECT room, MAX(cursor) FROM frames WHERE ts<? GROUP BY room",
                                               (now - self.max_age_s,)).fetchall()
                    for room, cut in expired:
                        r = self._load(room)
                        assert r is not None
                        n += self._drop_prefix(room, r, cut, "age")
                        self._save(room, r)
                    silent = self._db.execute(
                        "SELECT room FROM rooms WHERE last_active<? AND NOT EXISTS "
                        "(SELECT 1 FROM frames WHERE frames.room = rooms.room)", (now - self.max_age_s,)).fetchall()
                    for (room,) in silent:
                        if room in keep:
                            continue
                        self._db.execute("DELETE FROM rooms WHERE room=?", (room,))
                        self._cache.pop(room, None)
            except sqlite3.Error as exc:
                self._resync()
                raise MailboxError(f"mailbox prune failed: {exc}") from exc
            return n

    def stats(self) -> MailboxStats:
        with self._lock:
            self._check_open()
            rooms = self._db.execute("SELECT COUNT(*) FROM rooms").fetchone()[0]
            return MailboxStats(rooms, self._total_frames, self._total, dict(self._dropped))

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    raise MailboxError(f"mailbox flush failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # closing must not fail; the WAL is replayed on next open anyway
            self._db.close()


