"""What the SQLite mailbox checks in a file it opens: its schema and every row.

The file is input like any other: a process with write access to it (or a disk that flips
bits) can leave rows whose SQLite types differ from the declared ones (SQLite stores what it
is given: ``'text'`` in an INTEGER column, a BLOB in a TEXT one), sizes that lie about the
data, frames of a room without a record, or schema objects of its own. Left alone those reach
the relay as a ``str`` where bytes are served, a ``str`` compared with an ``int`` cursor, an
assertion in ``prune()``: one member's replay or the whole relay stops.

* Schema: tables and indexes other than the mailbox's own, any trigger or view, and columns
  that differ from the declared ones are a :class:`MailboxError` at open (the operator looks;
  nothing is rewritten). A ``frames`` table without rowids is refused the same way (global
  eviction orders by rowid).
* Rows: a room record or frame that breaks the rules below is moved, unchanged, into
  ``quarantined_rooms`` / ``quarantined_frames`` (made when first needed) with the reason,
  inside the open transaction; the frames of a moved room record go with it. The rest is
  served as before. A timestamp later than the clock at open plus
  :data:`DEFAULT_MAX_TIMESTAMP_SKEW_S` breaks the rules too: it would never age out.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..core.errors import MailboxError
from ..core.protocol.relay import MAX_CURSOR, ROOM_ID_MAX_HEX, ROOM_ID_MIN_HEX
from .mailbox import FRAME_OVERHEAD_BYTES, MAX_WRITER_CHARS

#: Declared columns per table: (name, declared type, NOT NULL, primary-key position).
_COLUMNS = {
    "meta": [("k", "TEXT", 0, 1), ("v", "TEXT", 1, 0)],
    "rooms": [("room", "TEXT", 0, 1), ("epoch", "TEXT", 1, 0), ("head", "INTEGER", 1, 0),
              ("pruned_through", "INTEGER", 1, 0), ("last_ts", "REAL", 1, 0), ("last_active", "REAL", 1, 0)],
    "frames": [("room", "TEXT", 1, 1), ("cursor", "INTEGER", 1, 2), ("ts", "REAL", 1, 0),
               ("size", "INTEGER", 1, 0), ("data", "BLOB", 1, 0), ("writer", "TEXT", 1, 0)],
    "quarantined_rooms": [(c, "", 0, 0) for c in ("room", "epoch", "head", "pruned_through", "last_ts",
                                                   "last_active")] + [("reason", "TEXT", 0, 0)],
    "quarantined_frames": [(c, "", 0, 0) for c in ("room", "cursor", "ts", "size", "data", "writer")]
    + [("reason", "TEXT", 0, 0)],
}
_INDEXES = frozenset({"frames_ts", "frames_writer", "frames_writer_ts"})
#: Made when there is first something to move. No column types (BLOB affinity): rows moved
#: there keep their values exactly as they were found, for the operator to look at.
_QUARANTINE = (
    "CREATE TABLE IF NOT EXISTS quarantined_rooms (room, epoch, head, pruned_through, last_ts, last_active, "
    "reason TEXT)",
    "CREATE TABLE IF NOT EXISTS quarantined_frames (room, cursor, ts, size, data, writer, reason TEXT)",
)
_OPTIONAL = frozenset({"quarantined_rooms", "quarantined_frames"})

# Rules shared with the Redis mailbox's checks (relay/redis_checks.py).
#: Largest stored timestamp magnitude accepted (largest finite float64, rounded down): a
#: timestamp beyond it (±Infinity) would never age out.
MAX_FINITE_TIMESTAMP = 1.7e308
#: Longest epoch (hex digits) a room record may hold: the protocol's epoch rule.
EPOCH_MAX_HEX = 32
_FINITE = f"BETWEEN {-MAX_FINITE_TIMESTAMP!r} AND {MAX_FINITE_TIMESTAMP!r}"

#: How far (seconds) a stored timestamp may lie after the clock reading at open. Every stored
#: timestamp is a reading of the relay's own clock, so a later one only comes from a clock
#: stepped back since (NTP correction, a file moved from a host whose clock ran ahead, a
#: time-zone mistake of up to 14 hours) or from an edited file. A day covers the honest cases;
#: beyond it a frame (or, through a room's ``last_ts``, every later frame of the room) would
#: outlive ``max_age_s`` by that much, up to never, bounded only by the room byte limit.
DEFAULT_MAX_TIMESTAMP_SKEW_S = 24 * 3600.0


def _hex(col: str, lo: int, hi: int) -> str:
    return f"typeof({col})='text' AND length({col}) BETWEEN {lo} AND {hi} AND {col} NOT GLOB '*[^0-9a-f]*'"


# typeof() tests come first in each conjunction, so no comparison meets NULL or a foreign type.
_GOOD_ROOM = " AND ".join([
    _hex("room", ROOM_ID_MIN_HEX, ROOM_ID_MAX_HEX), _hex("epoch", 1, EPOCH_MAX_HEX),
    "typeof(head)='integer'", "typeof(pruned_through)='integer'",
    "typeof(last_ts)='real'", "typeof(last_active)='real'",
    f"head BETWEEN 0 AND {MAX_CURSOR}", f"pruned_through BETWEEN 0 AND {MAX_CURSOR}",
    f"last_ts {_FINITE}", f"last_active {_FINITE}", "last_ts <= :not_after", "last_active <= :not_after"])

_GOOD_FRAME = " AND ".join([
    _hex("room", ROOM_ID_MIN_HEX, ROOM_ID_MAX_HEX),
    "typeof(cursor)='integer'", "typeof(ts)='real'", "typeof(size)='integer'", "typeof(data)='blob'",
    "typeof(writer)='text'",
    f"cursor BETWEEN 1 AND {MAX_CURSOR}", f"ts {_FINITE}", "ts <= :not_after", "length(data) > 0",
    f"size = length(data) + {FRAME_OVERHEAD_BYTES}", "size <= :max_room_bytes",
    f"length(writer) <= {MAX_WRITER_CHARS}"])


def check_schema(db: sqlite3.Connection, path: Path) -> None:
    """Raise :class:`MailboxError` unless the file holds exactly the mailbox's schema objects."""
    for kind, name in db.execute("SELECT type, name FROM sqlite_master"):
        if kind == "table" and (name in _COLUMNS or name.startswith("sqlite_")):
            continue
        if kind == "index" and (name in _INDEXES or name.startswith("sqlite_autoindex_")):
            continue
        raise MailboxError(f"mailbox {path}: unexpected {kind} {name!r} in the file")
    for table, want in _COLUMNS.items():
        have = [(n, str(t).upper(), nn, pk) for _cid, n, t, nn, _dflt, pk in db.execute(f"PRAGMA table_info({table})")]
        if have != want and not (table in _OPTIONAL and not have):
            raise MailboxError(f"mailbox {path}: table {table} has columns {have}, expected {want}")
    try:
        db.execute("SELECT rowid FROM frames LIMIT 0")
    except sqlite3.OperationalError as exc:
        raise MailboxError(f"mailbox {path}: table frames has no rowids") from exc


def quarantine_bad_rows(db: sqlite3.Connection, max_room_bytes: int, now: float,
                        max_skew_s: float = DEFAULT_MAX_TIMESTAMP_SKEW_S) -> int:
    """Move room records and frames that break the rules into the quarantine tables (inside
    the caller's transaction); return how many frames were moved.

    ``now`` is the mailbox clock's reading at open (seconds); a timestamp later than
    ``now + max_skew_s`` makes its row malformed (see :data:`DEFAULT_MAX_TIMESTAMP_SKEW_S`).
    """
    def found(table: str, where: str, params: dict[str, float]) -> bool:
        if not db.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {where})", params).fetchone()[0]:
            return False
        for stmt in _QUARANTINE:
            db.execute(stmt)
        return True

    params: dict[str, float] = {"max_room_bytes": max_room_bytes, "not_after": now + max_skew_s}
    bad_room = f"NOT COALESCE(({_GOOD_ROOM}), 0)"
    if found("rooms", bad_room, params):
        db.execute("INSERT INTO quarantined_rooms SELECT room, epoch, head, pruned_through, last_ts, last_active, "
                   f"'malformed room record' FROM rooms WHERE {bad_room}", params)
        db.execute(f"DELETE FROM rooms WHERE {bad_room}", params)
    moved = 0
    for reason, where in (("malformed frame", f"NOT COALESCE(({_GOOD_FRAME}), 0)"),
                          ("no room record", "room NOT IN (SELECT room FROM rooms)")):
        if found("frames", where, params):
            cur = db.execute("INSERT INTO quarantined_frames SELECT room, cursor, ts, size, data, writer, "
                             f"'{reason}' FROM frames WHERE {where}", params)
            moved += cur.rowcount
            db.execute(f"DELETE FROM frames WHERE {where}", params)
    return moved
