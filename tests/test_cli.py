"""The `ostracon` console script: every subcommand, and one-line errors (no tracebacks)."""

import json
import os
import subprocess
import sys

import pytest

import ostracon
from ostracon.cli import main
from ostracon.core.encoding import encode


@pytest.fixture()
def dbdir(tmp_path):
    path = tmp_path / "db"
    t = [1_700_000_000_000]

    def clock():
        t[0] += 10
        return t[0]
    with ostracon.open(path, clock=clock) as db:
        col = db.collection("notes")
        col.create({"title": "one", "tags": ["a"], "blob": b"\x00\x01"}, id="n1")
        col.create({"title": "two"}, id="n2")
        col.patch("n1", {"title": "one!"})
        col.increment("n2", "votes", 3)
        col.delete("n2")
        db.collection("todos").create({"done": False, "big": 2**80}, id="t1")
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect(dbdir, capsys):
    code, out, _ = run(capsys, "inspect", dbdir)
    assert code == 0
    assert "blocks     6" in out and "notes: 1 documents (1 deleted)" in out and "todos: 1 documents" in out
    assert "segments" in out and "snapshots" in out


def test_log_human_and_ndjson(dbdir, capsys):
    code, out, _ = run(capsys, "log", dbdir)
    assert code == 0 and len(out.splitlines()) == 6 and "notes/n1" in out and "delete document" in out
    code, out, _ = run(capsys, "log", dbdir, "--ndjson")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[0]["ops"][0] == ["s", "blob", {"$bytes": "AAE="}]
    assert {"cid", "collection", "id", "actor", "seq", "time", "ops"} <= set(lines[0])


def test_history(dbdir, capsys):
    code, out, _ = run(capsys, "history", dbdir, "notes", "n1", "--ndjson")
    commits = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [c["height"] for c in commits] == [1, 2]
    assert all(c["signature"]["status"] == "verified" for c in commits)
    code, _, err = run(capsys, "history", dbdir, "notes", "nope")
    assert code == 2 and "NotFoundError" in err and "Traceback" not in err


def test_verify_ok_and_tampered(dbdir, capsys):
    code, out, _ = run(capsys, "verify", dbdir)
    assert code == 0 and out.startswith("OK: 6 blocks")
    # Tamper with a stored seal signature through the API surface the verifier reads.
    db = ostracon.open(dbdir, read_only=True)
    from ostracon.cli import verify_database
    actor = next(iter(db.replica.seals))
    first, last, data = db.replica.seals[actor][0]
    bad = bytearray(data)
    bad[-70] ^= 1  # inside the signature bytes
    db.replica.seals[actor][0] = (first, last, bytes(bad))
    problems = verify_database(db)
    db.close()
    assert problems and "seal" in problems[0]


def damage_newest_segment(dbdir: str, divisor: int) -> None:
    """Flip one byte of the newest log segment, at 1/`divisor` of its length."""
    seg = sorted(p for p in os.listdir(dbdir) if p.endswith(".log"))[-1]
    path = os.path.join(dbdir, seg)
    data = bytearray(open(path, "rb").read())
    data[len(data) // divisor] ^= 0xFF
    open(path, "wb").write(bytes(data))


def damage_before_the_last_group(dbdir: str) -> None:
    """Damage the fixture's flush group, then add a second group after it: recovery cannot
    take the damage for a torn write at the tail."""
    with ostracon.open(dbdir) as db:
        db.collection("notes").create({"title": "three"}, id="n3")
    damage_newest_segment(dbdir, 3)


def test_verify_detects_corrupt_log_file(dbdir, capsys):
    damage_newest_segment(dbdir, 2)  # damage in the middle, followed by intact records
    code, out, err = run(capsys, "verify", dbdir)
    # The fixture flushed once, so the damage is in the log's last flush group, which
    # recovery cannot tell from a torn write: it is cut, and verify must say so (exit 1).
    assert code == 1 and "tail" in out and "Traceback" not in err


def test_verify_detects_corruption_before_the_last_group(dbdir, capsys):
    damage_before_the_last_group(dbdir)
    code, _, err = run(capsys, "verify", dbdir)
    assert code == 2 and "CorruptLogError" in err and err.count("\n") == 1 and "Traceback" not in err


def test_repair_quarantines_damage_the_error_points_at(dbdir, capsys):
    damage_before_the_last_group(dbdir)
    code, _, err = run(capsys, "verify", dbdir)
    assert code == 2 and f"ostracon repair {dbdir}" in err
    code, out, err = run(capsys, "repair", dbdir)
    assert code == 0 and "quarantined: " in out and "OK: repaired" in out, (out, err)
    assert any(n.startswith("quarantine-") for n in os.listdir(dbdir))
    code, out, _ = run(capsys, "repair", dbdir)  # the quarantine stays reported, nothing new is cut
    assert code == 0 and "OK: " in out
    with ostracon.open(dbdir) as db:  # the valid rest is readable and writable again
        db.collection("notes").create({"title": "four"}, id="n4")
        assert db.collection("notes").get("n4")["title"] == "four"


def test_repair_of_an_intact_database_changes_nothing(dbdir, capsys):
    before = sorted(os.listdir(dbdir))
    code, out, _ = run(capsys, "repair", dbdir)
    assert code == 0 and out.strip().endswith("OK: nothing to repair")
    assert sorted(os.listdir(dbdir)) == before


def test_compact_export_import_round_trip(dbdir, tmp_path, capsys):
    code, out, _ = run(capsys, "compact", dbdir)
    assert code == 0 and "snapshot" in out
    export = tmp_path / "out.ndjson"
    code, _, err = run(capsys, "export", dbdir, "--ndjson", "-o", str(export))
    assert code == 0 and "exported 2 documents" in err
    target = str(tmp_path / "copy")
    code, out, _ = run(capsys, "import", target, str(export))
    assert code == 0 and "2 created" in out
    with ostracon.open(target) as db:
        n1 = db.collection("notes").get("n1")
        assert n1["title"] == "one!" and n1["blob"] == b"\x00\x01" and n1["tags"] == ["a"]
        assert db.collection("todos").get("t1")["big"] == 2**80
    with ostracon.open(target) as db:
        before = db.state_hash(), db.heads()
    code, out, _ = run(capsys, "import", target, str(export))  # again: nothing changes
    assert code == 0 and "0 created, 0 updated, 2 unchanged" in out
    with ostracon.open(target) as db:
        assert (db.state_hash(), db.heads()) == before


def test_export_import_carries_schemas_lenses_and_indexes(tmp_path, capsys):
    src = tmp_path / "src"
    with ostracon.open(src) as db:
        v1 = db.define_schema("type Todo { name: String! }")["Todo"]
        db.collection("Todo").create({"name": "old"}, id="a")
        v2 = db.define_schema("type Todo { title: String! }")["Todo"]
        db.register_lens(v1, v2, [{"op": "rename", "from": "name", "to": "title"}])
        db.collection("Todo").create({"title": "new"}, id="b")
        db.collection("users").create_index("email", unique=True)
        db.collection("users").create({"email": "a@x"}, id="u")
    export = tmp_path / "out.ndjson"
    assert run(capsys, "export", str(src), "-o", str(export))[0] == 0
    target = tmp_path / "copy"
    code, out, _ = run(capsys, "import", str(target), str(export))
    assert code == 0 and "2 schema versions, 1 lenses, 1 indexes" in out and "3 created" in out
    with ostracon.open(target) as db:
        assert db.schema_versions() == {"Todo": v2}
        assert db.collection("Todo").get("a")["title"] == "old"
        with pytest.raises(ostracon.SchemaValidationError):
            db.collection("Todo").create({"name": "no title"})
        with pytest.raises(ostracon.ConflictError):
            db.collection("users").create({"email": "a@x"})
        before = db.state_hash(), db.heads()
    code, out, _ = run(capsys, "import", str(target), str(export))   # again: nothing changes
    assert code == 0 and "0 schema versions, 0 lenses, 0 indexes" in out
    with ostracon.open(target) as db:
        assert (db.state_hash(), db.heads()) == before


def test_import_of_a_hostile_schema_record_changes_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    with ostracon.open(src) as db:
        db.define_schema("type Todo { name: String! }")
        db.collection("Todo").create({"name": "x"}, id="a")
    export = tmp_path / "out.ndjson"
    assert run(capsys, "export", str(src), "-o", str(export))[0] == 0
    lines = export.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["schema"]["id"] = "b" + "a" * 60   # bytes that do not hash to their id
    # The hostile record comes after a document: still nothing is written.
    export.write_text("\n".join([lines[1], json.dumps(entry)]) + "\n")
    target = tmp_path / "copy"
    code, _, err = run(capsys, "import", str(target), str(export))
    assert code == 2 and "do not hash to its id" in err and "Traceback" not in err
    with ostracon.open(target) as db:
        assert db.collections() == [] and db.schema_versions() == {}


VALUES = {
    "none": None, "t": True, "f": False, "zero": 0, "neg0": -0.0, "one_float": 1.0, "one": 1,
    "big": 2**100, "negbig": -(2**70), "u64": 2**64 - 1, "tiny": 5e-324, "pi": 3.141592653589793,
    "s": "héllo 👩‍💻 \u0000 \u2028", "empty": "", "b": b"\x00\xff", "eb": b"", "l": [1, [2.0, [None]]],
    "m": {"$bytes": "not bytes", "$map": {"x": 1}}, "m2": {"$bytes": "AAE="}, "m3": {"$x": [b"\x01"]},
    "nested": {"a": {"b": {"c": [{"d": b"\x02"}]}}}, "emptymap": {}, "emptylist": [],
}


def test_export_import_is_lossless_for_every_value_and_idempotent(tmp_path, capsys):
    src = tmp_path / "src"
    with ostracon.open(src) as db:
        db.collection("v").create(VALUES, id="all")
        want = db.collection("v").get("all")
    export = tmp_path / "out.ndjson"
    assert run(capsys, "export", str(src), "--ndjson", "-o", str(export))[0] == 0
    target = tmp_path / "copy"
    for _ in range(2):
        assert run(capsys, "import", str(target), str(export))[0] == 0
    with ostracon.open(target) as db:
        got = db.collection("v").get("all")
        assert got["_version"] == 1                      # imported once, then unchanged
        user = {k: v for k, v in got.items() if k[0] != "_"}
        # canonical bytes: equal values of different types (1 / 1.0 / true) would differ
        assert encode(user) == encode({k: v for k, v in want.items() if k[0] != "_"})
        assert str(user["neg0"]) == "-0.0" and type(user["one_float"]) is float
    # importing into the database it came from changes nothing either
    with ostracon.open(src) as db:
        before = db.state_hash()
    assert run(capsys, "import", str(src), str(export))[0] == 0
    with ostracon.open(src) as db:
        assert db.state_hash() == before


def test_compact_prune_before(dbdir, capsys):
    code, out, _ = run(capsys, "compact", dbdir, "--prune-before", str(2_000_000_000_000))
    assert code == 0
    code, out, _ = run(capsys, "verify", dbdir)
    assert code == 0 and "pruned" in out
    # history shows what is kept and says what is gone (it used to fail, naming a Python flag).
    code, out, err = run(capsys, "history", dbdir, "notes", "n1")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2, err
    assert lines[0].startswith("1 older commit(s) pruned by compaction") and lines[1].startswith("h2 ")
    code, out, _ = run(capsys, "history", dbdir, "notes", "n1", "--ndjson")
    entries = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and entries[0]["pruned"] == 1 and [e["height"] for e in entries[1:]] == [2]
    # log says the same; its NDJSON stays an importable audit trail (the note goes to stderr).
    code, out, _ = run(capsys, "log", dbdir)
    assert code == 0 and out.splitlines()[0].startswith("3 older block(s) pruned by compaction (horizon 2033-")
    code, out, err = run(capsys, "log", dbdir, "--ndjson")
    assert code == 0 and "pruned by compaction" in err and all(json.loads(line) for line in out.splitlines())


def test_expected_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "inspect", str(tmp_path / "missing"))
    assert code == 2 and err.strip().count("\n") == 0 and "no such database" in err
    bad = tmp_path / "bad.ndjson"
    bad.write_text("{not json\n")
    code, _, err = run(capsys, "import", str(tmp_path / "x"), str(bad))
    assert code == 2 and "bad.ndjson:1" in err
    # Nested past the JSON parser's depth: the same one-line error, not a RecursionError.
    bad.write_text('{"collection": "c", "doc": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    code, _, err = run(capsys, "import", str(tmp_path / "x"), str(bad))
    assert code == 2 and "bad.ndjson:1: not an export line" in err


@pytest.mark.parametrize("content", [b"\xff\xfe{}\n",
                                     b'{"collection": "c", "doc": {}}\n{"collection": "c", "doc": "\xe9"}\n'])
def test_import_of_a_file_that_is_not_utf8_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, content):
    bad = tmp_path / "latin1.ndjson"
    bad.write_bytes(content)
    code, _, err = run(capsys, "import", str(tmp_path / "x"), str(bad))
    assert code == 2 and "latin1.ndjson: not UTF-8 text" in err and err.strip().count("\n") == 0
    with ostracon.open(tmp_path / "x") as db:
        assert db.collections() == []


@pytest.mark.parametrize("command", ["inspect", "verify", "export", "log", "compact"])
def test_a_directory_without_a_store_is_refused_not_read_as_empty(tmp_path, capsys, command):
    # A typo must not print "OK: 0 blocks" (exit 0), nor turn a stray directory into a store.
    wrong = tmp_path / "photos"
    wrong.mkdir()
    (wrong / "holiday.jpg").write_bytes(b"\xff\xd8")
    code, _, err = run(capsys, command, str(wrong))
    assert code == 2 and "not an Ostracon database" in err
    assert sorted(os.listdir(wrong)) == ["holiday.jpg"]


def test_locked_database_is_a_clear_error(dbdir):
    # A second *writer* process gets a one-line LockedError; the console script is used
    # as installed, so this also checks the entry point.
    with ostracon.open(dbdir):
        proc = subprocess.run([sys.executable, "-m", "ostracon.cli", "compact", dbdir],
                              capture_output=True, text=True)
    assert proc.returncode == 2 and "LockedError" in proc.stderr and "Traceback" not in proc.stderr


def test_log_and_history_never_print_terminal_controls_from_member_data(tmp_path, capsys):
    # Field names, values and metadata come from any member of a space: printed raw, an ESC
    # sequence retitles the operator's terminal or clears it, a CR/NL forges a log line.
    path = tmp_path / "db"
    evil = "\x1b]0;pwned\x07\x1b[2J\r\nh9 forged\u202e\x9b"
    with ostracon.open(path) as db:
        with db.provenance({"stage": "ocr" + evil}):
            db.collection("t").create({"name" + evil: "value" + evil}, id="d")
    for argv in (["log", str(path)], ["history", str(path), "t", "d"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and len(out.splitlines()) == 1, argv
        assert not any(c in out for c in "\x1b\x07\r\u202e\x9b"), argv
        assert "stage=ocr\\x1b]0;pwned\\x07" in out and "\\u202e" in out


def test_python_dash_m_ostracon_runs_the_console_script():
    proc = subprocess.run([sys.executable, "-m", "ostracon", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0 and proc.stdout.startswith("usage: ostracon ") and "import" in proc.stdout


def test_index_waits_until_built_and_reports_progress(tmp_path, capsys):
    path = str(tmp_path / "big")
    db = ostracon.open(path)
    col = db.collection("c")
    for i in range(6_000):                      # above the synchronous build size: a throttled job
        col.create({"k": i % 10}, id=f"d{i:05d}")
    db.close()
    code, out, err = run(capsys, "index", path, "c", "k", "--progress")
    assert code == 0 and out.strip() == "index idx_k on c is ready"
    assert err.rstrip().endswith("6000/6000")
    db = ostracon.open(path)
    assert [i["name"] for i in db.collection("c").indexes()] == ["idx_k"]
    assert len(db.collection("c").find({"k": 3})) == 600
    db.close()
