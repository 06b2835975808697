"""Bounded per-room mailboxes of opaque frames, so a device that comes online alone catches up.

The relay stores ciphertext it cannot read. Each room has:

* ``epoch``: random hex chosen when the room's record is created. If the record is ever lost
  (memory mailbox restarted, room forgotten after ``max_age_s`` of silence) the epoch changes,
  so a client holding an old cursor learns its cursor means nothing here any more.
* cursors: 1, 2, 3, ... one per stored frame, contiguous within the room and never reused
  while the record exists.
* ``pruned_through``: the highest cursor that was dropped. Age drops a prefix (oldest
  first); the room and total budgets drop the oldest frames of the heaviest *writer* (in the
  room, over all rooms: below), which may leave holes. A client asking for ``since < pruned_through`` is
  told about the gap and still gets every retained frame after ``since``.
* writer: an opaque tag stored with each frame, the relay's view of who published it (the
  connection's client key). The relay cannot read frames, so this is the only fairness handle.

Limits (each enforced on ``append``, age also by ``prune()``):

* ``max_room_bytes`` (default 64 MiB): one busy room cannot take the whole disk; 64 MiB holds
  >100 full 512 KiB frames, far more than a device misses in a normal offline period. Over it,
  the oldest frames of the writer holding the most bytes in the room go first (ties: the writer
  whose oldest frame is oldest), so a flooding writer evicts only its own frames.
* ``max_age_s`` (default 30 days): frames for a device that never returns do not live forever;
  a month covers holidays.
* ``max_total_bytes`` (default 1 GiB): the whole mailbox stays bounded however many rooms
  exist. Over it, the oldest frames of the writer holding the most bytes over *all* rooms go
  first (ties: the writer whose oldest frame is oldest). Rooms are free to create (a room id is
  a key the client makes), so "globally oldest first" would let one writer filling rooms of its
  own push every other room's frames out; this way it evicts its own first, and another
  writer's frames only once that writer holds as much. With a single writer it is the same as
  globally oldest first.

The clock is injected (``clock() -> seconds``, default ``time.time``) so age pruning is tested
without sleeping. Backends are synchronous and fast (SQLite in WAL mode with
``synchronous=NORMAL`` commits in tens of microseconds), so the relay calls them directly on
its event loop: no await between "mailbox read returned nothing" and "switch to live", which
is what keeps replay-then-live free of races.
"""

from __future__ import annotations

import bisect
import secrets
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from ..core.errors import (
    MailboxError,  # noqa: F401  (re-exported)
    ValidationError,
)
from ..core.protocol.relay import MAX_CURSOR, valid_room_id

DEFAULT_MAX_ROOM_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_AGE_S = 30 * 24 * 3600.0
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024 * 1024
#: Bytes charged per stored frame on top of its payload, so the limits bound what a frame
#: really costs: a SQLite row with its primary-key and timestamp index entries, a Redis stream
#: entry with its field names, or the in-memory tuple and deque slot all take 60..120 bytes.
#: Without it 20,000 one-byte frames would count as 20 KB while taking megabytes.
FRAME_OVERHEAD_BYTES = 96
#: Room records the SQLite backend keeps in memory (least recently used beyond it are reloaded
#: from the database on demand): 20,000 rooms must not pin megabytes of relay memory forever.
MAX_CACHED_ROOMS = 4096
#: Default page size of ``read``: big enough to amortize the query, small enough that the
#: relay checks for shutdown / slow consumers between pages.
DEFAULT_READ_LIMIT = 64
#: Longest writer tag: a client key is an IPv4 address or an IPv6 /64 prefix (< 50 chars).
MAX_WRITER_CHARS = 128

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
    first: int = 0  # lowest retained cursor (0: not given, taken as pruned_through + 1)

    @property
    def oldest(self) -> int:
        """Lowest retained cursor; ``head + 1`` when nothing is retained."""
        if not self.frames:
            return self.head + 1
        return self.first or self.pruned_through + 1

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
        # Fair eviction may leave holes below pruned_through: replay from the lowest retained
        # frame, never skip frames that are still stored.
        if since > 0 and epoch is not None and epoch != self.epoch:
            return Resume(self.oldest - 1, "epoch", True)
        if since > self.head:
            return Resume(self.oldest - 1, "ahead", True)
        if since < self.pruned_through:
            return Resume(max(since, self.oldest - 1), "pruned", True)
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

    def _check_frame(self, room: str, frame: bytes, writer: str) -> None:
        _check_room(room)
        if not isinstance(writer, str) or len(writer) > MAX_WRITER_CHARS:
            raise ValidationError(f"writer must be a str of at most {MAX_WRITER_CHARS} characters")
        if not isinstance(frame, (bytes, bytearray, memoryview)) or len(frame) == 0:
            raise ValidationError("frame must be non-empty bytes")
        if len(frame) + FRAME_OVERHEAD_BYTES > self.max_room_bytes:
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
    def append(self, room: str, frame: bytes, writer: str = "") -> int:
        """Store ``frame`` tagged with ``writer``; return its cursor (previous head + 1).
        Prunes to the limits (room budget: the heaviest writer's oldest frames first)."""

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
    __slots__ = ("epoch", "head", "pruned_through", "frames", "bytes", "writers", "last_ts", "last_active")

    def __init__(self, epoch: str, now: float):
        self.epoch = epoch
        self.head = 0
        self.pruned_through = 0
        self.frames: deque[tuple[int, float, int, bytes, str]] = deque()  # cursor, ts, seq, data, writer
        self.bytes = 0
        self.writers: dict[str, int] = {}  # writer -> bytes held in this room
        self.last_ts = now  # frame timestamps are kept non-decreasing per room
        self.last_active = now


class MemoryMailbox(Mailbox):
    """In-process mailbox for tests and ``--mailbox memory``. Lost on restart (epochs change)."""

    def __init__(self, **limits: object):
        super().__init__(**limits)  # type: ignore[arg-type]
        self._rooms: dict[str, _MemRoom] = {}
        self._total = 0
        self._seq = 0  # global append order: breaks timestamp ties when evicting the oldest
        self._writer_bytes: dict[str, int] = {}  # writer -> bytes held over all rooms
        self._writer_frames: dict[str, dict[int, _MemRoom]] = {}  # writer -> seq -> room, oldest first
        self._closed = False

    def _room(self, room: str, create: bool) -> _MemRoom | None:
        r = self._rooms.get(room)
        if r is None and create:
            r = self._rooms[room] = _MemRoom(_new_epoch(), self.clock())
        return r

    def append(self, room: str, frame: bytes, writer: str = "") -> int:
        self._check_frame(room, frame, writer)
        now = self.clock()
        r = self._room(room, True)
        assert r is not None
        frame = bytes(frame)
        r.head += 1
        r.last_ts = max(r.last_ts, now)
        r.last_active = now
        self._seq += 1
        r.frames.append((r.head, r.last_ts, self._seq, frame, writer))
        size = len(frame) + FRAME_OVERHEAD_BYTES
        r.bytes += size
        r.writers[writer] = r.writers.get(writer, 0) + size
        self._writer_bytes[writer] = self._writer_bytes.get(writer, 0) + size
        self._writer_frames.setdefault(writer, {})[self._seq] = r
        self._total += size
        self._drop_expired(r, now)
        while r.bytes > self.max_room_bytes:
            self._drop_heaviest(r)
        while self._total > self.max_total_bytes:
            self._drop_heaviest_writer()
        return r.head

    def _drop_first(self, r: _MemRoom, reason: str) -> None:
        self._forget(r, r.frames.popleft(), reason)

    def _forget(self, r: _MemRoom, entry: tuple[int, float, int, bytes, str], reason: str) -> None:
        cursor, _ts, seq, frame, writer = entry
        size = len(frame) + FRAME_OVERHEAD_BYTES
        r.pruned_through = max(r.pruned_through, cursor)
        r.bytes -= size
        left = r.writers[writer] - size
        if left:
            r.writers[writer] = left
        else:
            del r.writers[writer]
        left = self._writer_bytes[writer] - size
        held = self._writer_frames[writer]
        del held[seq]
        if left:
            self._writer_bytes[writer] = left
        else:
            del self._writer_bytes[writer], self._writer_frames[writer]
        self._total -= size
        self._dropped[reason] += 1

    def _drop_heaviest(self, r: _MemRoom) -> None:
        """Drop the oldest frame of the writer holding the most bytes; ties go to the writer
        whose oldest frame is oldest, i.e. the first of the tied writers met in cursor order."""
        most = max(r.writers.values())
        for i, entry in enumerate(r.frames):
            if r.writers[entry[4]] == most:
                del r.frames[i]
                self._forget(r, entry, "room_bytes")
                return
        raise AssertionError("room byte accounting is inconsistent")  # pragma: no cover

    def _drop_heaviest_writer(self) -> None:
        """Drop the oldest frame of the writer holding the most bytes over all rooms; ties go to
        the writer whose oldest frame is oldest."""
        most = max(self._writer_bytes.values())
        seq, r = min((next(iter(self._writer_frames[w].items())) for w, held in self._writer_bytes.items()
                      if held == most), key=lambda x: x[0])
        i = bisect.bisect_left(r.frames, seq, key=lambda e: e[2])  # seq grows with cursor in a room
        entry = r.frames[i]
        del r.frames[i]
        self._forget(r, entry, "total_bytes")

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
        start = bisect.bisect_right(r.frames, after, key=lambda e: e[0])  # holes: no index arithmetic
        out: list[tuple[int, bytes]] = []
        size = 0
        for i in range(start, min(len(r.frames), start + limit)):
            cursor, _ts, _seq, frame, _writer = r.frames[i]
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
        first = r.frames[0][0] if r.frames else 0
        return RoomInfo(room, r.epoch, r.head, r.pruned_through, len(r.frames), r.bytes, first)

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


from .files import default_data_dir, private_dir  # noqa: E402,F401  (re-exported)
from .sqlite_mailbox import SqliteMailbox  # noqa: E402  (re-exported; it builds on the classes above)


def parse_mailbox_spec(spec: str, **limits: object) -> Mailbox:
    """``"memory"`` or ``"sqlite:PATH"`` → a mailbox with the given limits."""
    if not isinstance(spec, str):
        raise ValidationError("mailbox spec must be a string")
    if spec == "memory":
        return MemoryMailbox(**limits)
    if spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        return SqliteMailbox(spec[len("sqlite:"):], **limits)
    raise ValidationError(f"mailbox spec must be 'memory' or 'sqlite:PATH', not {spec!r}")
