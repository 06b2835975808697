"""The materialized read view's rows (ostracon.runtime.browser.readview), natively.

The rows are computed from an open database and the storage records of a batch; here the
database runs on memory storage (the IndexedDB transaction that carries them is checked in
Chromium: e2e/test_browser_readview.py). A model of the IndexedDB store (`apply`) receives the
rows of every flush, and must always equal the documents the engine returns for the records
that are stored.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ostracon
from ostracon.runtime.browser.convert import prepare
from ostracon.runtime.browser.readview import (
    VIEW_FORMAT,
    ReadView,
    ViewRows,
    marker,
    parse_marker,
    read_form,
    to_batch,
)
from ostracon.storage.memory import MemoryStorage


def open_db(storage: MemoryStorage | None = None) -> ostracon.Database:
    return ostracon.open(storage=storage or MemoryStorage(), driver=False, sink_batch_ops=10_000)


def apply(store: dict, rows: ViewRows) -> None:
    """What web/bridge.js writeView does to the object store."""
    if rows.clear:
        store.clear()
    for c, i in rows.deletes:
        store.pop((c, i), None)
    for c, i, d in rows.puts:
        store[(c, i)] = d


class Flusher:
    """Flushes the database and feeds the new storage records to the view, like
    IndexedDBStorage does inside each transaction."""

    def __init__(self, db: ostracon.Database, storage: MemoryStorage) -> None:
        self.db, self.storage, self.view = db, storage, ReadView(db)
        self.seen = storage.last_position()
        self.store: dict = {}

    def flush(self) -> ViewRows:
        self.db.flush()
        recs = [r for p, r in self.storage.records(self.seen)]
        self.seen = self.storage.last_position()
        rows = self.view.rows(recs)
        apply(self.store, rows)
        self.view.committed(rows)
        return rows

    def expected(self) -> dict:
        out = {}
        for name in self.db.collections():
            docs, _ = self.db.collection(name).scan(limit=100_000)
            out.update({(name, d["_id"]): d for d in docs})
        return out


def test_marker_round_trip() -> None:
    assert parse_marker(marker(0)) == 0
    assert parse_marker(marker(12345)) == 12345
    assert marker(7) == f"{VIEW_FORMAT}:7".encode()


@given(st.binary(max_size=40))
def test_damaged_markers_are_refused_or_exact(raw: bytes) -> None:
    pos = parse_marker(raw)
    # A marker is only believed when it is exactly what `marker` writes.
    assert pos is None or marker(pos) == raw


@pytest.mark.parametrize("raw", [None, b"", b"1", b"1:", b"2:5", b"1:-3", b"1:5x", b"1:05", b"\xff:1",
                                 b"1:" + b"9" * 17])
def test_unusable_markers(raw: bytes | None) -> None:
    assert parse_marker(raw) is None


def test_rows_follow_writes_updates_and_deletes() -> None:
    st_ = MemoryStorage()
    db = open_db(st_)
    f = Flusher(db, st_)
    notes = db.collection("notes")
    a = notes.create({"title": "a", "body": 3})
    b = notes.create({"title": "b", "tags": ["x"], "raw": b"\x00\x01"})
    rows = f.flush()
    assert sorted(k for c, k, _ in rows.puts) == sorted([a, b]) and not rows.deletes
    assert f.store == f.expected()
    notes.patch(a, {"body": None})
    notes.delete(b)
    rows = f.flush()
    assert [(c, i) for c, i in rows.deletes] == [("notes", b)]
    assert f.store == f.expected()
    assert f.store[("notes", a)]["_version"] == 2
    assert f.store[("notes", a)]["_heads"] == notes.get(a)["_heads"]
    db.close()


def test_read_form_is_what_get_returns_for_live_edited_and_deleted_documents() -> None:
    db = open_db()
    notes = db.collection("notes")
    live = notes.create({"title": "a", "tags": ["x"], "raw": b"\x00", "n": {"k": 1.5}})
    edited = notes.create({"title": "b", "hits": 1})
    notes.patch(edited, {"title": "c"}, unset=["hits"])
    notes.increment(edited, "views", 3)
    notes.text(edited, "body").insert(0, "hello")
    db.flush()
    deleted = notes.create({"title": "d"})
    notes.delete(deleted)
    for doc_id in (live, edited, deleted):
        state = db.replica.doc("notes", doc_id)
        want = notes.get(doc_id, include_deleted=True)
        got = read_form(state)
        assert got == want and list(got) == list(want), doc_id   # same fields, same order
    assert read_form(db.replica.doc("notes", deleted))["_deleted"] is True
    assert read_form(db.replica.doc("notes", edited))["body"] == "hello"
    db.close()


def test_only_touched_documents_are_written() -> None:
    st_ = MemoryStorage()
    db = open_db(st_)
    f = Flusher(db, st_)
    c = db.collection("c")
    ids = [c.create({"i": i}) for i in range(20)]
    f.flush()
    c.patch(ids[3], {"i": -1})
    rows = f.flush()
    assert [(col, i) for col, i, _ in rows.puts] == [("c", ids[3])]
    db.close()


def test_a_document_with_a_queued_head_waits_for_its_block() -> None:
    st_ = MemoryStorage()
    db = open_db(st_)
    f = Flusher(db, st_)
    c = db.collection("c")
    x = c.create({"v": 1})
    db.flush()
    recs = [r for _, r in st_.records(f.seen)]
    f.seen = st_.last_position()
    c.patch(x, {"v": 2})  # applied in memory, still in the sink's queue
    rows = f.view.rows(recs)
    assert not rows.puts and not f.view.settles(rows)
    f.view.committed(rows)
    assert f.view.pending == {("c", x)}  # left out: asked for again with the next batch
    rows = f.flush()
    assert [d["v"] for _, _, d in rows.puts] == [2]
    assert f.view.pending == set()
    assert f.store == f.expected()
    db.close()


def test_a_failed_transaction_keeps_pending_documents() -> None:
    db = open_db()
    view = ReadView(db)
    view.pending = {("c", "gone")}
    rows = view.rows([])
    assert rows.wanted == {("c", "gone")} and view.settles(rows)
    # committed() is never called for a transaction that aborted: nothing is forgotten.
    assert view.pending == {("c", "gone")}
    view.committed(rows)
    assert view.pending == set()  # a document that does not exist has nothing to show
    db.close()


def test_merged_blocks_update_the_view() -> None:
    one, two = MemoryStorage(), MemoryStorage()
    a, b = open_db(one), open_db(two)
    f = Flusher(b, two)
    x = a.collection("n").create({"t": "from a"})
    y = b.collection("n").create({"t": "from b"})
    a.flush()
    f.flush()
    b.apply_blocks(a.blocks_since(b.version_vector()))
    rows = f.flush()
    assert ("n", x) in {(c, i) for c, i, _ in rows.puts}
    assert f.store == f.expected()
    assert set(f.store) == {("n", x), ("n", y)}
    a.close()
    b.close()


def test_all_rows_rebuilds_every_live_document_and_skips_reserved_collections() -> None:
    db = open_db()
    db.collection("n").create({"t": 1}, id="a")
    db.collection("n").create({"t": 2}, id="b")
    db.collection("m").create({"t": 3}, id="a")
    db.collection("n").delete("b")
    db.define_schema("type n { t: Int }")  # its version is a document of a reserved collection
    view = ReadView(db)
    early = view.all_rows()  # nothing is stored yet: every document waits for its blocks
    assert early.clear and not early.puts and early.wanted == {("n", "a"), ("m", "a")}
    db.flush()
    rows = view.all_rows()
    assert rows.clear
    store = {("stale", "x"): {}}
    apply(store, rows)
    assert sorted(store) == [("m", "a"), ("n", "a")]
    assert all(not c.startswith("ostracon.") for c, _ in store)
    db.close()


def test_to_batch_shapes() -> None:
    rows = ViewRows(puts=[("c", "1", {"a": 1})], deletes=[("c", "2")], clear=True)
    assert to_batch(rows) == {"clear": True, "putKeys": [["c", "1"]], "putDocs": [{"a": 1.0}],
                              "deleteKeys": [["c", "2"]]}


@given(st.dictionaries(st.text(max_size=5), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
    | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10), max_size=6))
def test_prepared_documents_follow_the_conversion_rules(doc: dict) -> None:
    null = object()
    rows = ViewRows(puts=[("c", "1", doc)])
    assert to_batch(rows, null)["putDocs"] == [prepare(doc, null)]


def test_random_histories_keep_the_view_equal_to_the_engine() -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    st_ = MemoryStorage()
    db = open_db(st_)
    f = Flusher(db, st_)
    c = db.collection("r")
    live: list[str] = []
    for _ in range(300):
        op = rng.random()
        if op < 0.4 or not live:
            live.append(c.create({"n": rng.randrange(100), "s": rng.choice(["x", None, 1.5, [1], {"k": b"v"}])}))
        elif op < 0.7:
            c.patch(rng.choice(live), {"n": rng.randrange(100)})
        elif op < 0.85:
            c.delete(live.pop(rng.randrange(len(live))))
        else:
            f.flush()
            assert f.store == f.expected(), f"seed {seed}"
    f.flush()
    assert f.store == f.expected(), f"seed {seed}"
    db.close()


def test_a_catch_up_in_steps_settles_only_with_its_last_step() -> None:
    st_ = MemoryStorage()
    db = open_db(st_)
    c = db.collection("c")
    ids = [c.create({"i": i}) for i in range(5)]
    for _ in range(3):  # one document written several times: still one row
        c.patch(ids[0], {"i": -1})
    db.flush()
    view = ReadView(db)
    view.note([r for _, r in st_.records()])
    assert view.pending == {("c", i) for i in ids}
    store: dict = {}
    written = []
    while view.pending:
        rows = view.rows(limit=2)
        last = view.settles(rows)
        apply(store, rows)
        view.committed(rows)
        written.append(([k for _, k, _ in rows.puts], last))
    assert written == [(sorted(ids)[0:2], False), (sorted(ids)[2:4], False), (sorted(ids)[4:], True)]
    assert store == Flusher(db, st_).expected()
    assert store[("c", ids[0])]["_version"] == 4
    db.close()


def test_a_rebuild_settles_what_was_pending_before_it() -> None:
    st_ = MemoryStorage()
    db = open_db(st_)
    c = db.collection("c")
    gone = c.create({"i": 0})
    c.create({"i": 1})
    c.delete(gone)
    db.flush()
    view = ReadView(db)
    view.note([r for _, r in st_.records()])
    rows = view.all_rows()
    assert view.settles(rows)  # the deleted document has no row to write
    view.committed(rows)
    assert view.pending == set()
    db.close()
