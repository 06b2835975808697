"""The audit trail (db/audit.py): `ostracon log --ndjson` lines are self-contained and
`ostracon import` of them rebuilds the same DAG, CIDs and signatures."""

import base64
import json

import pytest

import ostracon
from ostracon import CorruptBlockError, ValidationError
from ostracon.cli import main
from ostracon.core import cid as cidlib
from ostracon.core.block import Seal, decode_change, decode_seal
from ostracon.db.audit import audit_entries, entry_envelopes, is_audit_entry
from ostracon.tagged_json import from_json_value

KEYS = {"cid", "collection", "id", "parents", "height", "clock", "time", "actor", "seq", "ops",
        "meta", "schema", "block", "seal"}


@pytest.fixture()
def dbdir(tmp_path):
    path = tmp_path / "src"
    t = [1_700_000_000_000]

    def clock():
        t[0] += 10
        return t[0]
    with ostracon.open(path, clock=clock) as db:
        col = db.collection("pages")
        col.create({"text": "a", "blob": b"\x00"}, id="p1")
        db.flush()
        with db.provenance({"stage": "ocr", "model": "m", "inputs": [col.history("p1")[0]["cid"]]}):
            col.patch("p1", {"text": "b"})
            col.create({"text": "c"}, id="p2")
        col.increment("p2", "n", 2)
        col.delete("p2")
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_log_lines_are_self_contained(dbdir, capsys):
    code, out, _ = run(capsys, "log", dbdir, "--ndjson")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 5
    for e in lines:
        assert set(e) == KEYS and is_audit_entry(e)
        data = base64.b64decode(e["block"])
        assert cidlib.format_cid(cidlib.compute(data)) == e["cid"]
        assert e["seal"] is not None and e["time"] == e["clock"] >> 16
    assert lines[1]["parents"] == [lines[0]["cid"]] and lines[1]["height"] == 2
    assert lines[1]["meta"]["stage"] == "ocr" and lines[1]["meta"]["inputs"] == [lines[0]["cid"]]
    code, out, _ = run(capsys, "log", dbdir, "--stage", "ocr")
    assert code == 0 and len(out.splitlines()) == 2 and "stage=ocr model=m" in out
    code, out, _ = run(capsys, "history", dbdir, "pages", "p1")
    assert code == 0 and "stage=ocr model=m" in out.splitlines()[1] and "stage" not in out.splitlines()[0]


def test_ops_are_in_the_lossless_json_form_even_for_maps_whose_keys_look_like_tags():
    # A user's map {"$bytes": "..."} is data, not bytes: an entry's ops must read back as
    # exactly the operations its block holds.
    value = {"tagged": {"$bytes": "AAE="}, "raw": b"\x00\x01", "list": [b"\xff", {"$k": None}]}
    with ostracon.open() as db:
        db.collection("c").create({"v": value}, id="d")
        db.collection("c").patch("d", {"n": 2**70})
        entries = list(audit_entries(db.replica))
    assert len(entries) == 2
    for e in entries:
        ops = [list(op) for op in decode_change(base64.b64decode(e["block"])).ops]
        assert from_json_value(json.loads(json.dumps(e["ops"]))) == ops
    assert entries[0]["ops"] == [["s", "v", {"list": [{"$bytes": "/w=="}, {"$map": {"$k": None}}],
                                             "raw": {"$bytes": "AAE="}, "tagged": {"$map": {"$bytes": "AAE="}}}]]
    assert entries[1]["ops"] == [["s", "n", 2**70]]


def test_import_rebuilds_the_same_dag_cids_and_signatures(dbdir, tmp_path, capsys):
    trail = tmp_path / "trail.ndjson"
    code, out, _ = run(capsys, "log", dbdir, "--ndjson")
    trail.write_text(out, encoding="utf-8")
    dest = tmp_path / "dest"
    code, out, err = run(capsys, "import", dest, trail)
    assert code == 0, err
    assert "5 blocks replayed" in out
    code, out, _ = run(capsys, "verify", dest)
    assert code == 0 and out.startswith("OK")
    with ostracon.open(dbdir, read_only=True) as a, ostracon.open(dest, read_only=True) as b:
        assert a.state_hash() == b.state_hash()
        for doc in ("p1", "p2"):
            ha = a.collection("pages").history(doc)
            hb = b.collection("pages").history(doc)
            assert len(ha) == len(hb) and [c["cid"] for c in ha] == [c["cid"] for c in hb]
            assert all(c["signature"]["status"] == "verified" for c in hb)
        assert a.replica.seals == b.replica.seals
        assert [e["block"] for e in audit_entries(a.replica)] == [e["block"] for e in audit_entries(b.replica)]


def test_a_tampered_line_is_refused(dbdir, tmp_path, capsys):
    code, out, _ = run(capsys, "log", dbdir, "--ndjson")
    lines = [json.loads(line) for line in out.splitlines()]
    e = dict(lines[0])
    e["cid"] = lines[1]["cid"]
    with pytest.raises(CorruptBlockError):
        entry_envelopes(e)
    with pytest.raises(ValidationError):
        entry_envelopes(dict(lines[0], block="!!"))
    with pytest.raises(ValidationError):
        entry_envelopes([1])
    trail = tmp_path / "bad.ndjson"
    trail.write_text(json.dumps(e) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "import", tmp_path / "dest", trail)
    assert code != 0 and "do not hash" in err and "Traceback" not in err


def test_a_forged_seal_does_not_verify(dbdir, tmp_path, capsys):
    code, out, _ = run(capsys, "log", dbdir, "--ndjson")
    lines = [json.loads(line) for line in out.splitlines()]
    seal = decode_seal(base64.b64decode(lines[0]["seal"]))
    sig = bytes([seal.signature[0] ^ 1]) + seal.signature[1:]
    forged = Seal(seal.actor, seal.first, seal.last, seal.digest, sig).encode()
    lines[0]["seal"] = base64.b64encode(forged).decode()
    trail = tmp_path / "forged.ndjson"
    trail.write_text(json.dumps(lines[0]) + "\n", encoding="utf-8")
    code, _, _ = run(capsys, "import", tmp_path / "dest", trail)
    with ostracon.open(tmp_path / "dest", read_only=True) as b:
        assert "pages" not in b.collections() or b.collection("pages").get("p1") is None


def test_compaction_keeps_the_last_k_snapshots_for_audit(dbdir, capsys):
    with ostracon.open(dbdir) as db:
        for i in range(3):
            db.collection("pages").create({"text": "d"}, id=f"k{i}")
            db.compact(keep_snapshots=2)
        assert len(db.storage.snapshot_positions()) == 2
        with pytest.raises(ValidationError):
            db.compact(keep_snapshots=0)
        db.collection("pages").create({"text": "d"}, id="k9")
    code, out, _ = run(capsys, "compact", dbdir, "--keep-snapshots", "3")
    assert code == 0
    with ostracon.open(dbdir, read_only=True) as db:
        assert len(db.storage.snapshot_positions()) == 3
        assert db.verify() == []
        assert len(db.collection("pages").history("p1")) == 2
