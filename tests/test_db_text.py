"""Text fields through the public API (db/text.py): handle, bursts, merge, reopen."""

from __future__ import annotations

import random

import pytest

import ostracon
from db_helpers import ID_A, ID_B, Clock, open_db
from ostracon import NotFoundError, Text, TextCursor, ValidationError
from ostracon.core.text import TEXT_BURST_OPS
from ostracon.crypto.identity import Identity
from ostracon.db.text import TEXT_BURST_CHARS, TEXT_BURST_MS


def sync(src, dst):
    src.flush()
    dst.apply_blocks(src.blocks_since(dst.version_vector()))


def blocks(db):
    return len(db.replica.order)


def test_create_edit_and_read_as_a_plain_string():
    db = open_db()
    notes = db.collection("notes")
    doc_id = notes.create({"title": "Groceries", "body": Text("milk")})
    body = notes.text(doc_id, "body")
    body.insert(4, ", eggs")
    body.splice(0, 4, "oat milk")
    body.delete(len(body) - 6, 6)
    assert str(body) == "oat milk" and len(body) == 8
    doc = notes.get(doc_id)
    assert doc["body"] == "oat milk" and type(doc["body"]) is str
    notes.create_index("body")
    assert [d["_id"] for d in notes.find({"body": {"_eq": "oat milk"}})] == [doc_id]
    assert [d["_id"] for d in notes.find({"body": {"_like": "%milk"}})] == [doc_id]


def test_edits_of_one_burst_become_one_block():
    clock = Clock()
    db = open_db(clock=clock)
    notes = db.collection("notes")
    doc_id = notes.create({"body": Text()})
    before = blocks(db)
    body = notes.text(doc_id, "body")
    for ch in "hello world":
        body.insert(len(body), ch)
    assert blocks(db) == before                    # still one open burst
    clock.t += TEXT_BURST_MS
    db.tick()                                      # the time rule ends it
    assert blocks(db) == before + 1
    for _ in range(TEXT_BURST_OPS):                # the size rule
        body.insert(0, "x")
    assert blocks(db) == before + 2
    body.insert(0, "y")
    notes.get(doc_id)                              # any other read ends the burst
    assert blocks(db) == before + 3
    body.delete(0, 1)
    assert body.commit() is not None and body.commit() is None
    assert blocks(db) == before + 4


def test_a_large_insert_is_split_into_bounded_blocks():
    db = open_db()
    notes = db.collection("notes")
    doc_id = notes.create({"body": Text("<>")})
    big = "".join(random.Random(3).choice("ab😀é") for _ in range(TEXT_BURST_CHARS * 2 + 10))
    notes.text(doc_id, "body").insert(1, big)
    assert notes.get(doc_id)["body"] == "<" + big + ">"
    # Two edits that together would outgrow a block go to two bursts.
    before = blocks(db)
    body = notes.text(doc_id, "body")
    wide = "😀" * (TEXT_BURST_CHARS - 100)
    body.insert(0, wide)
    body.splice(0, 0, wide)
    body.commit()
    assert blocks(db) == before + 2
    assert notes.get(doc_id)["body"] == wide + wide + "<" + big + ">"


def test_two_devices_typing_at_the_end_keep_both_texts():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    na, nb = a.collection("notes"), b.collection("notes")
    doc_id = na.create({"body": Text("Note:")}, id="n1")
    sync(a, b)
    ta, tb = na.text(doc_id, "body"), nb.text(doc_id, "body")
    for ch in " from A":                           # both offline
        ta.insert(len(ta), ch)
    for ch in " from B":
        tb.insert(len(tb), ch)
    sync(a, b)
    sync(b, a)
    assert na.get(doc_id)["body"] == nb.get(doc_id)["body"] == "Note: from A from B"
    assert a.state_hash() == b.state_hash()
    # online: edits cross one at a time
    for ch in "12":
        ta.insert(0, ch)
        tb.insert(len(tb), ch)
        sync(a, b)
        sync(b, a)
    assert str(ta) == str(tb) == "21Note: from A from B12"
    assert "".join(r["text"] for r in ta.blame()) == str(ta)
    assert {r["actor"] for r in tb.blame()} == {ID_A.actor.hex(), ID_B.actor.hex()}


def test_cursor_follows_remote_edits():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    na, nb = a.collection("notes"), b.collection("notes")
    doc_id = na.create({"body": Text("hello world")}, id="n1")
    sync(a, b)
    ta = na.text(doc_id, "body")
    caret = ta.cursor(5)
    assert isinstance(caret, TextCursor)
    nb.text(doc_id, "body").insert(0, "Oh, ")
    sync(b, a)
    assert ta.resolve(caret) == 9 and str(ta)[ta.resolve(caret):] == " world"


def test_blame_lists_authors_of_characters():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    na, nb = a.collection("notes"), b.collection("notes")
    doc_id = na.create({"body": Text("hello")}, id="n1")
    sync(a, b)
    nb.text(doc_id, "body").insert(5, " world")
    sync(b, a)
    assert na.text(doc_id, "body").blame() == [
        {"actor": ID_A.actor.hex(), "text": "hello"}, {"actor": ID_B.actor.hex(), "text": " world"}]


def test_plain_string_field_becomes_text_holding_its_value():
    db = open_db()
    notes = db.collection("notes")
    doc_id = notes.create({"body": "old body", "n": 3})
    body = notes.text(doc_id, "body")
    body.insert(0, "new ")
    assert notes.get(doc_id)["body"] == "new old body"
    with pytest.raises(ValidationError):
        notes.text(doc_id, "n").insert(0, "x")
    notes.patch(doc_id, {"body": "replaced"})      # a later set wins over the text ...
    assert str(body) == "replaced"
    body.insert(8, "!")                            # ... and editing makes it a text again
    assert notes.get(doc_id)["body"] == "replaced!"
    notes.update(doc_id, {"body": Text("fresh")})
    assert notes.get(doc_id)["body"] == "fresh"
    assert "n" not in notes.get(doc_id)


def test_two_devices_migrating_one_plain_body_keep_one_copy_of_it():
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    na, nb = a.collection("notes"), b.collection("notes")
    doc_id = na.create({"body": "shared line"}, id="n1")   # a plain (LWW) string body
    sync(a, b)
    ta, tb = na.text(doc_id, "body"), nb.text(doc_id, "body")
    before = blocks(a)
    ta.insert(len(ta), " +A")                       # both migrate it, offline
    tb.insert(0, "B+ ")
    ta.commit()
    assert blocks(a) == before + 1                  # the seed travels with the first burst
    sync(a, b)
    sync(b, a)
    assert str(ta) == str(tb) == "B+ shared line +A"
    assert a.state_hash() == b.state_hash()
    authors = {r["actor"] for r in ta.blame() if r["text"] == "shared line"}
    assert authors and authors.isdisjoint({ID_A.actor.hex(), ID_B.actor.hex()})  # the seed
    # A later plain value migrated again starts from that value, not the old seed.
    na.patch(doc_id, {"body": "shared line"})
    sync(a, b)
    ta.insert(0, "x")
    tb.insert(len(tb), "y")
    sync(a, b)
    sync(b, a)
    assert str(ta) == str(tb) == "xshared liney"


def test_history_and_time_travel_show_earlier_text():
    clock = Clock()
    db = open_db(clock=clock)
    notes = db.collection("notes")
    doc_id = notes.create({"body": Text("v1")})
    first = notes.get(doc_id)["_heads"]
    clock.t += 5
    notes.text(doc_id, "body").insert(2, " and v2")
    assert notes.get(doc_id)["body"] == "v1 and v2"
    assert notes.get(doc_id, at=first)["body"] == "v1"
    assert [op[0] for op in notes.history(doc_id)[-1]["ops"]] == ["t"]


def test_bad_edits_raise_typed_errors():
    db = open_db()
    notes = db.collection("notes")
    doc_id = notes.create({"body": Text("abc")})
    body = notes.text(doc_id, "body")
    for call in (lambda: body.insert(9, "x"), lambda: body.insert(0, "\udc00"),
                 lambda: body.delete(2, 5), lambda: body.splice(-1, 0, "x"),
                 lambda: body.resolve("cursor"), lambda: Text(3)):
        with pytest.raises(ValidationError):
            call()
    assert str(body) == "abc"
    with pytest.raises(NotFoundError):
        notes.text("missing", "body")
    notes.delete(doc_id)
    with pytest.raises(NotFoundError):
        body.insert(0, "x")


def test_text_survives_reopen_and_compaction(tmp_path):
    db = open_db(path=tmp_path)
    notes = db.collection("notes")
    doc_id = notes.create({"body": Text()})
    body = notes.text(doc_id, "body")
    rng = random.Random(5)
    expect = []
    for _ in range(500):
        if expect and rng.random() < 0.3:
            p = rng.randrange(len(expect))
            body.delete(p, 1)
            del expect[p]
        else:
            p = rng.randint(0, len(expect))
            c = rng.choice("abc😀")
            body.insert(p, c)
            expect[p:p] = c
    db.close()
    db = open_db(path=tmp_path)
    assert db.collection("notes").get(doc_id)["body"] == "".join(expect)
    h = db.state_hash()
    db.compact()
    db.close()
    db = open_db(path=tmp_path)
    notes = db.collection("notes")
    assert notes.get(doc_id)["body"] == "".join(expect) and db.state_hash() == h
    notes.text(doc_id, "body").insert(0, ">")
    assert notes.get(doc_id)["body"] == ">" + "".join(expect)


def test_schema_type_text_makes_written_strings_texts():
    db = open_db()
    db.define_schema("type notes { title: String, body: Text @index }")
    notes = db.collection("notes")
    doc_id = notes.create({"title": "t", "body": "typed as text"})
    assert db.replica.doc("notes", doc_id).is_text("body")
    notes.text(doc_id, "body").insert(0, ">")
    with pytest.raises(ostracon.SchemaValidationError):
        notes.create({"body": 5})
    assert [d["_id"] for d in notes.find({"body": {"_eq": ">typed as text"}})] == [doc_id]
    out = db.graphql('{ notes(filter: {body: {_like: ">%"}}) { body } }')
    assert out["data"]["notes"] == [{"body": ">typed as text"}]


@pytest.mark.parametrize("seed", range(6))
def test_three_databases_editing_and_syncing_at_random_converge(seed):
    rng = random.Random(seed)
    ids = [ID_A, ID_B, Identity.from_seed(bytes(range(2, 34)))]
    clocks = [Clock() for _ in ids]
    dbs = [open_db(i, clock=c, seed=k + 1) for k, (i, c) in enumerate(zip(ids, clocks, strict=True))]
    dbs[0].collection("notes").create({"body": Text("seed text")}, id="n1")
    for d in dbs[1:]:
        sync(dbs[0], d)
    handles = [d.collection("notes").text("n1", "body") for d in dbs]
    for _ in range(60):
        k = rng.randrange(3)
        t = handles[k]
        clocks[k].t += rng.randint(0, 400)
        if len(t) and rng.random() < 0.3:
            p = rng.randrange(len(t))
            t.delete(p, rng.randint(1, min(3, len(t) - p)))
        else:
            t.insert(rng.randint(0, len(t)), rng.choice(["a", "bc", "😀", "e\u0301", " "]))
        if rng.random() < 0.2:
            i, j = rng.sample(range(3), 2)
            sync(dbs[i], dbs[j])
    for _ in range(2):
        for i in range(3):
            for j in range(3):
                if i != j:
                    sync(dbs[i], dbs[j])
    bodies = {d.collection("notes").get("n1")["body"] for d in dbs}
    assert len(bodies) == 1, f"seed={seed}"
    assert len({d.state_hash() for d in dbs}) == 1, f"seed={seed}"


def test_recreating_a_deleted_document_starts_its_text_afresh_and_the_feed_sees_strings():
    db = open_db()
    notes = db.collection("notes")
    notes.create({"body": Text("first life")}, id="n1")
    notes.text("n1", "body").insert(0, "my ")
    notes.delete("n1")
    assert notes.get("n1") is None
    notes.create({"body": Text("second")}, id="n1")
    assert notes.get("n1")["body"] == "second"
    events, _ = db.changes(after=None)
    bodies = [e.fields.get("body") for e in events if e.fields]
    assert "my first life" in bodies and bodies[-1] == "second"


def test_a_burst_whose_commit_fails_stays_pending(monkeypatch):
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    na = a.collection("notes")
    na.create({"body": Text("abc")}, id="n1")
    t = na.text("n1", "body")
    t.insert(3, "def")
    t.delete(0, 1)
    engine = a._engine  # noqa: SLF001 - the test breaks the write path on purpose
    real = engine.write

    def broken(*args, **kw):
        raise ValidationError("refused")
    monkeypatch.setattr(engine, "write", broken)
    with pytest.raises(ValidationError):
        t.commit()
    monkeypatch.setattr(engine, "write", real)
    assert t.commit() is not None
    sync(a, b)
    assert b.collection("notes").get("n1")["body"] == "bcdef"
