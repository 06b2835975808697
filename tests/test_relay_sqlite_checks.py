"""The SQLite mailbox against a file someone edited (relay/sqlite_checks.py): malformed rows are
quarantined and never served, a changed schema is a typed error at open."""

from __future__ import annotations

import sqlite3

import pytest

from ostracon.relay.mailbox import DEFAULT_MAX_AGE_S, MailboxError, SqliteMailbox
from ostracon.relay.mailbox import FRAME_OVERHEAD_BYTES as O
from ostracon.relay.sqlite_checks import DEFAULT_MAX_TIMESTAMP_SKEW_S

R1 = "a1" * 32
R2 = "b2" * 32
R3 = "c3" * 16


class FakeClock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _tamper(path, *statements):
    db = sqlite3.connect(path)
    for stmt, params in statements:
        db.execute(stmt, params)
    db.commit()
    db.close()


def test_sqlite_badly_typed_rows_are_quarantined_never_served(tmp_path):
    # Someone with write access to the file edits rows: values of the wrong SQLite type, a
    # size that does not match the data, frames of a room without a record, a room record
    # with an epoch or head of the wrong type. The mailbox opens, moves those rows aside
    # (kept in quarantine tables for the operator), counts them, and serves the rest.
    path = tmp_path / "mb.sqlite"
    clock = FakeClock()
    mb = SqliteMailbox(path, clock=clock)
    for i in range(4):
        mb.append(R1, b"good%d" % i)
    mb.append(R2, b"r2")
    mb.append(R3, b"r3")
    epoch = mb.info(R1).epoch
    mb.close()
    ins = "INSERT INTO frames VALUES (?,?,?,?,?,?)"
    _tamper(path,
            ("UPDATE frames SET data='text, not bytes' WHERE room=? AND cursor=2", (R1,)),
            (ins, (R1, "x", clock.t, 1 + O, b"z", "")),          # cursor of the wrong type
            (ins, (R1, 9, "soon", 1 + O, b"z", "")),             # timestamp of the wrong type
            (ins, (R1, 10, clock.t, -5000, b"z", "")),           # size that lies about the data
            (ins, (R1, 11, clock.t, 1 + O, b"z", b"w")),         # writer of the wrong type
            (ins, (R1, 12, float("inf"), 1 + O, b"z", "")),      # a timestamp that never ages
            (ins, (R1, -3, clock.t, 1 + O, b"z", "")),           # cursor out of range
            (ins, ("D" * 64, 1, clock.t, 1 + O, b"z", "")),      # not a room id
            (ins, ("e5" * 32, 1, 1.0, 1 + O, b"z", "")),         # frames of a room without record
            ("UPDATE rooms SET epoch=x'07' WHERE room=?", (R2,)),  # R2's record and frame go
            ("UPDATE rooms SET head='lots' WHERE room=?", (R3,)))
    mb = SqliteMailbox(path, clock=clock)
    try:
        assert mb.stats().dropped["quarantined"] == 11
        assert mb.read(R1, 0) == [(1, b"good0"), (3, b"good2"), (4, b"good3")]
        info = mb.info(R1)
        assert (info.epoch, info.head, info.frames) == (epoch, 4, 3)
        assert mb.read(R2, 0) == [] and mb.read(R3, 0) == []
        assert mb.info(R2).head == 0 and mb.info(R3).head == 0
        assert mb.append(R1, b"after") == 5
        clock.t += 40 * 24 * 3600
        assert mb.append(R2, b"fresh") == 1
        assert mb.prune() == 4
        assert mb.stats().frames == 1 and mb.stats().bytes == 5 + O
    finally:
        mb.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT COUNT(*) FROM quarantined_frames").fetchone()[0] == 11
        assert db.execute("SELECT COUNT(*) FROM quarantined_rooms").fetchone()[0] == 2
    finally:
        db.close()
    mb = SqliteMailbox(path, clock=clock)  # what is left is clean: nothing more is moved
    try:
        assert mb.stats().dropped["quarantined"] == 0
    finally:
        mb.close()


@pytest.mark.parametrize("change", [
    "CREATE TRIGGER t AFTER INSERT ON frames BEGIN DELETE FROM rooms; END",
    "CREATE VIEW v AS SELECT 1",
    "ALTER TABLE frames ADD COLUMN extra TEXT",
    "ALTER TABLE rooms RENAME COLUMN head TO top",
])
def test_sqlite_file_with_a_changed_schema_is_a_typed_error(tmp_path, change):
    path = tmp_path / "mb.sqlite"
    SqliteMailbox(path).close()
    _tamper(path, (change, ()))
    with pytest.raises(MailboxError, match="mb.sqlite"):
        SqliteMailbox(path)


def test_sqlite_frames_table_without_rowids_is_a_typed_error(tmp_path):
    path = tmp_path / "mb.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
        CREATE TABLE rooms (room TEXT PRIMARY KEY, epoch TEXT NOT NULL, head INTEGER NOT NULL,
          pruned_through INTEGER NOT NULL, last_ts REAL NOT NULL, last_active REAL NOT NULL);
        CREATE TABLE frames (room TEXT NOT NULL, cursor INTEGER NOT NULL, ts REAL NOT NULL,
          size INTEGER NOT NULL, data BLOB NOT NULL, writer TEXT NOT NULL DEFAULT '',
          PRIMARY KEY (room, cursor)) WITHOUT ROWID;
        INSERT INTO meta VALUES ('schema', '2');
    """)
    db.close()
    with pytest.raises(MailboxError, match="mb.sqlite"):
        SqliteMailbox(path)


def test_sqlite_clean_file_gets_no_quarantine_tables(tmp_path):
    path = tmp_path / "mb.sqlite"
    mb = SqliteMailbox(path)
    mb.append(R1, b"x")
    mb.close()
    mb = SqliteMailbox(path)
    mb.close()
    db = sqlite3.connect(path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()
    assert tables == {"meta", "rooms", "frames"}


def test_sqlite_timestamps_past_the_allowed_skew_are_quarantined(tmp_path):
    # A finite timestamp far in the future would keep a frame (or, through a room's last_ts,
    # every later frame of the room) from ever ageing out. Past the open time plus the allowed
    # clock skew it is malformed; within the skew it is served and ages out as usual.
    path = tmp_path / "mb.sqlite"
    clock = FakeClock()
    mb = SqliteMailbox(path, clock=clock)
    mb.append(R1, b"good")
    mb.append(R2, b"r2")
    mb.close()
    skew = DEFAULT_MAX_TIMESTAMP_SKEW_S
    ins = "INSERT INTO frames VALUES (?,?,?,?,?,?)"
    _tamper(path,
            (ins, (R1, 2, clock.t + skew, 1 + O, b"n", "")),          # at the limit: kept
            (ins, (R1, 3, clock.t + skew + 1.0, 1 + O, b"f", "")),    # past it: moved
            (ins, (R1, 4, 1e300, 1 + O, b"f", "")),                   # finite, never ages
            ("UPDATE rooms SET head=4, last_ts=? WHERE room=?", (clock.t + skew, R1)),
            ("UPDATE rooms SET last_active=? WHERE room=?", (clock.t + 10 * skew, R2)))
    mb = SqliteMailbox(path, clock=clock)
    try:
        assert mb.stats().dropped["quarantined"] == 3   # R1's two frames, R2's frame with its record
        assert mb.read(R1, 0) == [(1, b"good"), (2, b"n")]
        assert mb.read(R2, 0) == []
        clock.t += skew + DEFAULT_MAX_AGE_S + 1.0
        assert mb.prune() == 2
        assert mb.stats().frames == 0
    finally:
        mb.close()
    db = sqlite3.connect(path)
    try:
        reasons = sorted(r[0] for r in db.execute("SELECT reason FROM quarantined_frames"))
        assert reasons == ["malformed frame", "malformed frame", "no room record"]
        assert db.execute("SELECT room FROM quarantined_rooms").fetchall() == [(R2,)]
    finally:
        db.close()
