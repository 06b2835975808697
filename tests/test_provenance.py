"""Provenance (db/provenance.py): commit metadata stored in blocks, shown by history and
blame, queried by stage, traced from a field to the commit's inputs."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ostracon
from ostracon import CorruptBlockError, NotFoundError, ValidationError
from ostracon.core import cid as cidlib
from ostracon.core.block import (
    MAX_META_INPUTS,
    MAX_META_TEXT,
    Change,
    check_meta,
    decode_change,
)
from ostracon.core.encoding import canonical, encode_canonical
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.storage.memory import MemoryStorage

T0 = 1_700_000_000_000
ID_A = Identity.from_seed(bytes(range(32)))


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        self.t += 1
        return self.t


def open_db(storage=None):
    return ostracon.open(identity=ID_A, clock=Clock(), storage=storage, random_bytes=DeterministicRandom(7))


@pytest.fixture
def db():
    d = open_db()
    yield d
    d.close()


def test_meta_is_stored_in_the_block_and_covered_by_its_cid(db):
    col = db.collection("pages")
    col.create({"t": "x"}, id="p0")
    plain = col.history("p0")[0]
    with db.provenance({"stage": "ocr", "model": "m1"}):
        col.create({"t": "x"}, id="p1")
    c = col.history("p1")[0]
    assert c["meta"] == {"model": "m1", "stage": "ocr"}
    assert plain["meta"] is None
    data = db.replica.blocks[cidlib.parse_cid(c["cid"])]
    assert cidlib.compute(data) == cidlib.parse_cid(c["cid"])
    assert decode_change(data).meta == {"model": "m1", "stage": "ocr"}
    # Changing the metadata changes the CID (same ops, same everything else).
    ch = decode_change(data)
    other = Change(ch.collection, ch.doc_id, ch.parents, ch.height, ch.actor, ch.seq, ch.hlc,
                   ch.ops, ch.schema, {"model": "m2", "stage": "ocr"})
    assert cidlib.compute(other.encode()) != cidlib.parse_cid(c["cid"])


def test_scope_applies_to_its_thread_and_block_only_and_nests(db):
    col = db.collection("c")
    with db.provenance({"stage": "outer"}):
        col.create({"a": 1}, id="a")
        with db.provenance({"stage": "inner"}):
            col.create({"a": 1}, id="b")
        col.create({"a": 1}, id="c")
    col.create({"a": 1}, id="d")
    stages = [col.history(i)[0]["meta"] for i in "abcd"]
    assert stages == [{"stage": "outer"}, {"stage": "inner"}, {"stage": "outer"}, None]


@pytest.mark.parametrize("bad", [
    {}, {"stage": ""}, {"stage": 3}, {"unknown": "x"}, {"inputs": ["not a cid"]},
    {"stage": "s" * (MAX_META_TEXT + 1)}, [("stage", "x")], None,
])
def test_meta_is_validated_strictly(db, bad):
    with pytest.raises(ValidationError):
        with db.provenance(bad):
            pass


def test_meta_input_bounds():
    cids = [cidlib.compute(bytes([i, j])) for i in range(2) for j in range(MAX_META_INPUTS)]
    check_meta({"inputs": cids[:MAX_META_INPUTS]})
    with pytest.raises(ValidationError):
        check_meta({"inputs": cids[:MAX_META_INPUTS + 1]})
    with pytest.raises(ValidationError):
        check_meta({"inputs": [cids[0], cids[0]]})


def test_hostile_meta_in_a_block_is_corrupt():
    base = {"a": bytes(32), "c": "c", "d": "d", "h": 1, "o": [["s", "f", 1]], "p": [], "s": 1,
            "t": 5, "v": 1}
    for bad in ({"stage": 1}, {"zzz": "x"}, {"inputs": ["btext-not-binary"]}, "ocr", {}):
        with pytest.raises(CorruptBlockError):
            decode_change(encode_canonical(canonical(dict(base, e=bad))))
    good = decode_change(encode_canonical(canonical(dict(base, e={"stage": "ocr"}))))
    assert good.meta == {"stage": "ocr"}


def test_meta_survives_reopen_and_is_sealed():
    storage = MemoryStorage()
    db = open_db(storage)
    with db.provenance({"stage": "ocr"}):
        db.collection("p").create({"t": 1}, id="x")
    db.flush()
    copy = MemoryStorage()
    copy.append([r for _, r in storage.records()])
    db.close()
    db = open_db(copy)
    try:
        [c] = db.collection("p").history("x")
        assert c["meta"] == {"stage": "ocr"}
        assert c["signature"]["status"] == "verified"
        assert db.verify() == []
    finally:
        db.close()


def test_sink_ops_and_batches_carry_meta(db):
    db.send({"collection": "p", "kind": "create", "id": "a", "doc": {"n": 1}, "meta": {"stage": "one"}})
    db.send_many([{"collection": "p", "kind": "create", "id": "b", "doc": {"n": 1}},
                  {"collection": "p", "kind": "upsert", "id": "a", "doc": {"n": 2},
                   "meta": {"stage": "own"}}], meta={"stage": "batch"})
    assert [c["id"] for c in db.commits(stage="batch")] == ["b"]
    assert [c["id"] for c in db.commits(stage="own")] == ["a"]
    assert [c["id"] for c in db.commits(stage="one")] == ["a"]
    with pytest.raises(ValidationError):
        db.send({"collection": "p", "kind": "create", "doc": {}, "meta": {"bogus": "x"}})


def test_commits_filters_and_limit(db):
    col = db.collection("p")
    for i in range(5):
        with db.provenance({"stage": "ocr" if i % 2 else "clean", "model": f"m{i % 2}"}):
            col.create({"i": i}, id=f"d{i}")
    assert [c["id"] for c in db.commits(stage="ocr")] == ["d3", "d1"]
    assert [c["id"] for c in db.commits(stage="clean", limit=2)] == ["d4", "d2"]
    assert [c["id"] for c in db.commits(model="m1", collection="p", doc_id="d1")] == ["d1"]
    assert db.commits(stage="nope") == []
    with pytest.raises(ValidationError):
        db.commits(inputs="x")
    with pytest.raises(ValidationError):
        db.commits(limit=0)
    with pytest.raises(ValidationError):
        db.commits(actor="not hex")


def test_trace_goes_from_a_field_to_the_commit_and_its_inputs(db):
    scans = db.collection("scans")
    scans.create({"file": "p1.png"}, id="s1")
    scan_cid = scans.history("s1")[0]["cid"]
    missing = cidlib.format_cid(cidlib.compute(b"never seen"))
    with db.provenance({"stage": "ocr", "provider": "acme", "model": "ocr-2",
                        "inputs": [scan_cid, missing]}):
        db.collection("pages").create({"text": "he11o", "lang": "en"}, id="p1")
    with db.provenance({"stage": "lang"}):
        db.collection("pages").patch("p1", {"lang": "fr"})
    t = db.trace("pages", "p1", "text")
    assert t["value"] == "he11o"
    assert t["commit"]["meta"]["stage"] == "ocr" and t["commit"]["meta"]["model"] == "ocr-2"
    assert t["inputs"][0]["commit"]["collection"] == "scans"
    assert t["inputs"][0]["commit"]["id"] == "s1"
    assert t["inputs"][1] == {"cid": missing, "commit": None}
    assert db.trace("pages", "p1", "lang")["commit"]["meta"] == {"stage": "lang"}
    assert db.collection("pages").blame("p1")["lang"]["meta"] == {"stage": "lang"}
    with pytest.raises(NotFoundError):
        db.trace("pages", "p1", "nofield")
    with pytest.raises(NotFoundError):
        db.trace("pages", "nodoc", "text")


def test_readme_tracing_example_prints_what_it_says(tmp_path):
    import pathlib
    import subprocess
    import sys
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Tracing a value back (provenance)", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = section.split("```text\n", 1)[1].split("```", 1)[0]
    env = {"PYTHONPATH": str(pathlib.Path(__file__).parent.parent / "py")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          timeout=300, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == expected

_TEXT = st.text(min_size=1, max_size=MAX_META_TEXT)
_META = st.fixed_dictionaries({}, optional={
    "stage": _TEXT, "provider": _TEXT, "model": _TEXT, "run": _TEXT, "note": _TEXT,
    "inputs": st.lists(st.binary(min_size=1, max_size=8), max_size=MAX_META_INPUTS, unique=True).map(
        lambda xs: [cidlib.compute(x) for x in xs]),
}).filter(bool)


@settings(max_examples=60, deadline=None)
@given(_META)
def test_any_valid_meta_round_trips_through_block_bytes(meta):
    try:
        checked = check_meta(meta)
    except ValidationError as exc:
        assert "exceeds" in str(exc)  # only the 4 KiB bound can refuse a dict of this shape
        return
    ch = Change("c", "d", (), 1, bytes(32), 1, 5, (("s", "f", 1),), None, checked)
    data = ch.encode()
    back = decode_change(data)
    assert back.meta == checked and back.encode() == data


ID_OCR = Identity.from_seed(bytes(range(1, 33)))
ID_LANG = Identity.from_seed(bytes(range(2, 34)))


def test_stage_identities_sign_their_writes_and_blame_names_them():
    storage = MemoryStorage()
    db = open_db(storage)
    col = db.collection("pages")
    col.create({"n": 0}, id="p")
    with db.as_identity(ID_OCR) as who:
        assert who == ID_OCR.actor.hex()
        col.patch("p", {"text": "x"})
        with db.as_identity(ID_LANG):
            col.patch("p", {"lang": "en"})
        col.patch("p", {"n": 1})
    col.patch("p", {"done": True})
    blame = col.blame("p")
    assert blame["text"]["actor"] == blame["n"]["actor"] == ID_OCR.actor.hex()
    assert blame["lang"]["actor"] == ID_LANG.actor.hex()
    assert blame["done"]["actor"] == ID_A.actor.hex()
    assert [c["signature"]["status"] for c in col.history("p")] == ["pending"] * 5
    # nothing of a stage identity is served before it is sealed and durable
    assert db.version_vector() == {}
    db.flush()
    assert all(c["signature"]["status"] == "verified" for c in col.history("p"))
    assert db.version_vector() == {ID_A.actor.hex(): 2, ID_OCR.actor.hex(): 2, ID_LANG.actor.hex(): 1}
    assert [c["seq"] for c in db.commits(actor=ID_OCR.actor.hex())] == [2, 1]
    copy = MemoryStorage()
    copy.append([r for _, r in storage.records()])
    db.close()
    again = open_db(copy)
    try:
        assert again.verify() == []
        with again.as_identity(ID_OCR):   # continues its own sequence after a reopen
            again.collection("pages").patch("p", {"text": "y"})
        again.flush()
        assert again.version_vector()[ID_OCR.actor.hex()] == 3
        peer = ostracon.open(identity=Identity.from_seed(bytes(range(5, 37))), clock=Clock(),
                             random_bytes=DeterministicRandom(9))
        try:
            assert peer.apply_blocks(again.blocks_since({})) == 6
            assert peer.state_hash() == again.state_hash()
        finally:
            peer.close()
    finally:
        again.close()


def test_stage_identity_refusals(db):
    with pytest.raises(ValidationError):
        with db.as_identity(object()):
            pass
    db.collection("n").create({"body": ostracon.Text("hi")}, id="t")
    with db.as_identity(ID_OCR):
        with pytest.raises(ValidationError, match="own identity"):
            db.collection("n").create({"body": ostracon.Text("x")}, id="u")
        db.collection("n").create({"plain": "ok"}, id="v")
    assert db.collection("n").get("u") is None and db.collection("n").get("v")["plain"] == "ok"
