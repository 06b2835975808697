"""Bounded per-room mailboxes of opaque frames, so a device that comes online alone catches up.

The relay stores ciphertext it cannot read. Each room has:

* ``epoch``: random hex chosen when the room's record is created. If the record is ever lost
  (memory mailbox restarted, room forgotten after ``max_age_s`` of silence) the epoch changes,
  so a client holding an old cursor learns its cursor means nothing here any more.
* cursors: 1, 2, 3, ... one per stored frame, contiguous within the room and never reused
  while the record exists.
* ``pruned_through``: the highest cursor that was dropped. Frames are only ever dropped as a
  prefix (oldest first), so everything in ``(pruned_through, head]`` is still retained and a
  client asking for ``since < pruned_through`` is told about the gap.

Limits (each enforced on ``append``, age also by ``prune()``):

* ``max_room_bytes`` (default 64 MiB): one busy room cannot take the whole disk; 64 MiB holds
  >100 full 512 KiB frames, far more than a device misses in a normal offline period.
* ``max_age_s`` (default 30 days): frames for a device that never returns do not live forever;
  a month covers holidays.
* ``max_total_bytes`` (default 1 GiB): the whole mailbox stays bounded however many rooms
  exist; the globally oldest frames go first.

The clock is injected (``clock() -> seconds``, default ``time.time``) so age pruning is tested
without sleeping. Backends are synchronous and fast (SQLite in WAL mode with
``synchronous=NORMAL`` commits in tens of microseconds), so the relay calls them directly on
its event loop: no await between "mailbox read returned nothing" and "switch to live", which
is what keeps replay-then-live free of races.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import (
    LockedError,
    MailboxError,  # noqa: F401  (re-exported)
    StorageUnavailableError,
    ValidationError,
)
from ..core.protocol.relay import MAX_CURSOR, valid_room_id

DEFAULT_MAX_ROOM_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_AGE_S = 30 * 24 * 3600.0
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024 * 1024
#: Default page size of ``read``: big enough to amortize the query, small enough that the
#: relay checks for shutdown / slow consumers between pages.
DEFAULT_READ_LIMIT = 64

Clock = Callable[[], float]


@dataclass(frozen=True)
class Resume:
    """Where replay starts for a joining client, and whether it must be told about a gap."""

    after: int  # replay frames with cursor > after (== head: nothing to replay)
    gap: str | None  # None, or one of protocol.GAP_REASONS
    replay: bool  # False when the client asked for live frames only


@dataclass(frozen=True)
class RoomInfo:
    room: str
    epoch: str | None  # None: the mailbox has no record of this room
    head: int  # highest cursor ever assigned (0: none)
    pruned_through: int  # highest cursor dropped (0: none)
    frames: int
    bytes: int

    @property
    def oldest(self) -> int:
        """Lowest retained cursor; ``head + 1`` when nothing is retained."""
        return self.pruned_through + 1 if self.frames else self.head + 1

    def resume(self, since: int | None, epoch: str | None = None) -> Resume:
        """Decide replay for a client that last saw cursor ``since`` of mailbox ``epoch``.

        ``since=None`` asks for live frames only. A different epoch or a cursor beyond head
        (the relay lost data) replays everything retained and reports the gap; so does a
        cursor older than what was pruned. ``since=0`` ("I have nothing") needs no epoch
        match: it only gets a gap when frames were pruned.
        """
        if since is None:
            return Resume(self.head, None, False)
        if type(since) is not int or since < 0:
            raise ValidationError("since must be an int >= 0")
        if since > 0 and epoch is not None and epoch != self.epoch:
            return Resume(self.pruned_through, "epoch", True)
        if since > self.head:
            return Resume(self.pruned_through, "ahead", True)
        if since < self.pruned_through:
            return Resume(self.pruned_through, "pruned", True)
        return Resume(since, None, True)


@dataclass(frozen=True)
class MailboxStats:
    rooms: int
    frames: int
    bytes: int
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> frames dropped since open


def _new_epoch() -> str:
    return secrets.token_hex(8)


def _check_room(room: str) -> None:
    if not valid_room_id(room):
        raise ValidationError("room id must be 32..128 lower-case hex digits")


class Mailbox(ABC):
    """Contract for mailbox backends. All methods are synchronous and not re-entrant."""

    def __init__(self, *, max_room_bytes: int = DEFAULT_MAX_ROOM_BYTES, max_age_s: float = DEFAULT_MAX_AGE_S,
                 max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES, clock: Clock | None = None):
        if type(max_room_bytes) is not int or max_room_bytes <= 0:
            raise ValidationError("max_room_bytes must be a positive int")
        if type(max_total_bytes) is not int or max_total_bytes < max_room_bytes:
            raise ValidationError("max_total_bytes must be an int >= max_room_bytes")
        if not isinstance(max_age_s, (int, float)) or not max_age_s > 0:
            raise ValidationError("max_age_s must be > 0")
        self.max_room_bytes = max_room_bytes
        self.max_age_s = float(max_age_s)
        self.max_total_bytes = max_total_bytes
        self.clock: Clock = clock or time.time
        self._dropped = {"room_bytes": 0, "total_bytes": 0, "age": 0}

    def _check_frame(self, room: str, frame: bytes) -> None:
        _check_room(room)
        if not isinstance(frame, (bytes, bytearray, memoryview)) or len(frame) == 0:
            raise ValidationError("frame must be non-empty bytes")
        if len(frame) > self.max_room_bytes:
            raise ValidationError("frame is larger than max_room_bytes")

    @staticmethod
    def _check_read(room: str, after: int, limit: int, max_bytes: int | None) -> None:
        _check_room(room)
        if type(after) is not int or not 0 <= after <= MAX_CURSOR:
            raise ValidationError("after must be an int in [0, 2**63)")
        if type(limit) is not int or limit <= 0:
            raise ValidationError("limit must be a positive int")
        if max_bytes is not None and (type(max_bytes) is not int or max_bytes <= 0):
            raise ValidationError("max_bytes must be a positive int")

    @abstractmethod
    def append(self, room: str, frame: bytes) -> int:
        """Store ``frame``; return its cursor (previous head + 1). Prunes to the limits."""

    @abstractmethod
    def read(self, room: str, after: int, limit: int = DEFAULT_READ_LIMIT,
             max_bytes: int | None = None) -> list[tuple[int, bytes]]:
        """Retained frames with cursor > ``after`` in cursor order: at most ``limit`` frames
        and, past the first, at most ``max_bytes`` in total."""

    @abstractmethod
    def info(self, room: str, *, create: bool = False) -> RoomInfo:
        """The room's epoch, head, pruned point and size. ``create`` makes a record (new epoch)."""

    @abstractmethod
    def discard_if_empty(self, room: str) -> bool:
        """Forget a room record that never stored anything (head == 0). Called by the relay when
        the last member leaves, so joining random room ids does not accumulate records."""

    @abstractmethod
    def prune(self, keep: Collection[str] = ()) -> int:
        """Drop frames older than ``max_age_s`` and forget empty records silent that long, except
        the rooms in ``keep`` (rooms with live members must keep their epoch and cursors).
        Return the number of frames dropped."""

    @abstractmethod
    def stats(self) -> MailboxStats: ...

    def flush(self) -> None:  # noqa: B027  (optional: a no-op unless the backend buffers)
        """Make everything appended so far durable (no-op for memory)."""

    def close(self) -> None:  # noqa: B027  (optional: a no-op unless the backend holds resources)
        """Flush and release resources. Idempotent."""

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- memory -----------------------------------------------------------------------------

class _MemRoom:
    __slots__ = ("epoch", "head", "pruned_through", "frames", "bytes", "last_ts", "last_active")

    def __init__(self, epoch: str, now: float):
        self.epoch = epoch
        self.head = 0
        self.pruned_through = 0
        self.frames: deque[tuple[int, float, int, bytes]] = deque()  # cursor, ts, global seq, data
        self.bytes = 0
        self.last_ts = now  # frame timestamps are kept non-decreasing per room
        self.last_active = now


class MemoryMailbox(Mailbox):
    """In-process mailbox for tests and ``--mailbox memory``. Lost on restart (epochs change)."""

    def __init__(self, **limits: object):
        super().__init__(**limits)  # type: ignore[arg-type]
        self._rooms: dict[str, _MemRoom] = {}
        self._total = 0
        self._seq = 0  # global append order: breaks timestamp ties when evicting the oldest
        self._closed = False

    def _room(self, room: str, create: bool) -> _MemRoom | None:
        r = self._rooms.get(room)
        if r is None and create:
            r = self._rooms[room] = _MemRoom(_new_epoch(), self.clock())
        return r

    def append(self, room: str, frame: bytes) -> int:
        self._check_frame(room, frame)
        now = self.clock()
        r = self._room(room, True)
        assert r is not None
        frame = bytes(frame)
        r.head += 1
        r.last_ts = max(r.last_ts, now)
        r.last_active = now
        self._seq += 1
        r.frames.append((r.head, r.last_ts, self._seq, frame))
        r.bytes += len(frame)
        self._total += len(frame)
        self._drop_expired(r, now)
        while r.bytes > self.max_room_bytes:
            self._drop_first(r, "room_bytes")
        while self._total > self.max_total_bytes:
            oldest = min((x for x in self._rooms.values() if x.frames), key=lambda x: x.frames[0][1:3])
            self._drop_first(oldest, "total_bytes")
        return r.head

    def _drop_first(self, r: _MemRoom, reason: str) -> None:
        cursor, _ts, _seq, frame = r.frames.popleft()
        r.pruned_through = cursor
        r.bytes -= len(frame)
        self._total -= len(frame)
        self._dropped[reason] += 1

    def _drop_expired(self, r: _MemRoom, now: float) -> int:
        n = 0
        limit = now - self.max_age_s
        while r.frames and r.frames[0][1] < limit:
            self._drop_first(r, "age")
            n += 1
        return n

    def read(self, room: str, after: int, limit: int = DEFAULT_READ_LIMIT,
             max_bytes: int | None = None) -> list[tuple[int, bytes]]:
        self._check_read(room, after, limit, max_bytes)
        r = self._rooms.get(room)
        if r is None or not r.frames or after >= r.head:
            return []
        first = r.frames[0][0]
        start = max(0, after + 1 - first)  # cursors are contiguous: index arithmetic
        out: list[tuple[int, bytes]] = []
        size = 0
        for i in range(start, min(len(r.frames), start + limit)):
            cursor, _ts, _seq, frame = r.frames[i]
            if out and max_bytes is not None and size + len(frame) > max_bytes:
                break
            out.append((cursor, frame))
            size += len(frame)
        return out

    def info(self, room: str, *, create: bool = False) -> RoomInfo:
        _check_room(room)
        r = self._room(room, create)
        if r is None:
            return RoomInfo(room, None, 0, 0, 0, 0)
        return RoomInfo(room, r.epoch, r.head, r.pruned_through, len(r.frames), r.bytes)

    def discard_if_empty(self, room: str) -> bool:
        r = self._rooms.get(room)
        if r is not None and r.head == 0:
            del self._rooms[room]
            return True
        return False

    def prune(self, keep: Collection[str] = ()) -> int:
        now = self.clock()
        n = 0
        for name in list(self._rooms):
            r = self._rooms[name]
            n += self._drop_expired(r, now)
            if not r.frames and r.last_active < now - self.max_age_s and name not in keep:
                del self._rooms[name]
        return n

    def stats(self) -> MailboxStats:
        return MailboxStats(len(self._rooms), sum(len(r.frames) for r in self._rooms.values()),
                            self._total, dict(self._dropped))

    def close(self) -> None:
        self._closed = True


# --- sqlite -----------------------------------------------------------------------------

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
  PRIMARY KEY (room, cursor)
);
CREATE INDEX IF NOT EXISTS frames_ts ON frames (ts);
"""
_SCHEMA_VERSION = "1"


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
        self._cache: dict[str, _SqlRoom] = {}
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageUnavailableError(f"cannot open mailbox {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA busy_timeout=0")
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
                elif row[0] != _SCHEMA_VERSION:
                    raise MailboxError(f"mailbox {self.path}: unknown schema version {row[0]}")
            self._count_totals()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise LockedError(f"mailbox {self.path} is in use by another process") from exc
            raise MailboxError(f"mailbox {self.path}: {exc}") from exc
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

    def _load(self, room: str) -> _SqlRoom | None:
        """Cached room state. The rooms row is only written when a room is created or pruned
        (one table write per append instead of two); head, sizes and last timestamps are
        recomputed from the frames table when a room is first loaded."""
        r = self._cache.get(room)
        if r is None:
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
        return r

    def _save(self, room: str, r: _SqlRoom) -> None:
        self._db.execute("INSERT OR REPLACE INTO rooms VALUES (?,?,?,?,?,?)",
                         (room, r.epoch, r.head, r.pruned_through, r.last_ts, r.last_active))

    def _create(self, room: str, now: float) -> _SqlRoom:
        r = _SqlRoom(_new_epoch(), 0, 0, 0, 0, now, now)
        self._save(room, r)
        self._cache[room] = r
        return r

    def _drop_prefix(self, room: str, r: _SqlRoom, through: int, reason: str) -> int:
        """Delete frames with cursor <= through; return how many."""
        n, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM frames WHERE room=? AND cursor<=?",
                                   (room, through)).fetchone()
        self._db.execute("DELETE FROM frames WHERE room=? AND cursor<=?", (room, through))
        r.frames -= n
        r.bytes -= size
        self._total -= size
        self._total_frames -= n
        r.pruned_through = max(r.pruned_through, through)
        self._dropped[reason] += n
        return n

    def append(self, room: str, frame: bytes) -> int:
        self._check_frame(room, frame)
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
                    self._db.execute("INSERT INTO frames VALUES (?,?,?,?,?)",
                                     (room, r.head, r.last_ts, len(frame), frame))
                    r.frames += 1
                    r.bytes += len(frame)
                    self._total += len(frame)
                    self._total_frames += 1
                    pruned = self._expire_room(room, r, now)
                    if r.bytes > self.max_room_bytes:
                        pruned += self._drop_prefix(room, r, self._cut_for(room, r.bytes - self.max_room_bytes),
                                                    "room_bytes")
                    if pruned:
                        self._save(room, r)  # pruned_through must survive a restart
                    if self._total > self.max_total_bytes:
                        self._evict_global(self._total - self.max_total_bytes)
                    cursor = r.head
            except sqlite3.Error as exc:
                self._resync()
                raise MailboxError(f"mailbox append failed: {exc}") from exc
            return cursor

    def _cut_for(self, room: str, excess: int) -> int:
        """Smallest cursor c such that dropping the room's frames <= c frees >= excess bytes."""
        freed = 0
        for cursor, size in self._db.execute("SELECT cursor, size FROM frames WHERE room=? ORDER BY cursor", (room,)):
            freed += size
            if freed >= excess:
                return cursor
        raise MailboxError("room byte accounting is inconsistent")  # pragma: no cover

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
        cuts: dict[str, int] = {}
        freed = 0
        # Per-room timestamps are non-decreasing in cursor order and rowids grow with inserts,
        # so the globally oldest rows of each room form a cursor prefix: dropping
        # "cursor <= cut" keeps rooms contiguous. rowid breaks timestamp ties by append order.
        for room, cursor, size in self._db.execute("SELECT room, cursor, size FROM frames ORDER BY ts, rowid"):
            cuts[room] = cursor
            freed += size
            if freed >= excess:
                break
        for room, cut in cuts.items():
            r = self._load(room)
            assert r is not None
            self._drop_prefix(room, r, cut, "total_bytes")
            self._save(room, r)

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
            except sqlite3.Error as exc:
                self._cache.pop(room, None)
                raise MailboxError(f"mailbox info failed: {exc}") from exc
            if r is None:
                return RoomInfo(room, None, 0, 0, 0, 0)
            return RoomInfo(room, r.epoch, r.head, r.pruned_through, r.frames, r.bytes)

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


def parse_mailbox_spec(spec: str, **limits: object) -> Mailbox:
    """``"memory"`` or ``"sqlite:PATH"`` → a mailbox with the given limits."""
    if not isinstance(spec, str):
        raise ValidationError("mailbox spec must be a string")
    if spec == "memory":
        return MemoryMailbox(**limits)
    if spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        return SqliteMailbox(spec[len("sqlite:"):], **limits)
    raise ValidationError(f"mailbox spec must be 'memory' or 'sqlite:PATH', not {spec!r}")
