"""Definitions beside documents (db/exchange.py): schema versions, declarative lenses and
index definitions survive an export/import round trip; a malformed or hostile record is
refused with a typed error and nothing is half-imported."""

from __future__ import annotations

import base64
import copy

import pytest

import ostracon
from ostracon.core.encoding import encode
from ostracon.db.exchange import MAX_DEFINITIONS, is_definition

V1 = "type Todo { name: String! done: Boolean }"
V2 = "type Todo { title: String! done: Boolean @index }"
UP = [{"op": "rename", "from": "name", "to": "title"}]
DOWN = [{"op": "rename", "from": "title", "to": "name"}]


def source():
    db = ostracon.open()
    v1 = db.define_schema(V1)["Todo"]
    db.collection("Todo").create({"name": "old one"}, id="a")
    v2 = db.define_schema(V2)["Todo"]
    db.register_lens(v1, v2, UP, reverse=DOWN)
    db.collection("Todo").create({"title": "new one"}, id="b")
    db.collection("users").create_index(["email"], unique=True)
    db.collection("users").create_index(["team", "age"], name="by_team")
    return db, v1, v2


def state(db) -> tuple:
    return db.state_hash(), db.heads(), db.schema_versions(), db.definitions()


def test_round_trip_keeps_validation_lens_reads_and_indexes():
    src, v1, v2 = source()
    records = src.definitions()
    assert all(is_definition(r) for r in records)
    assert [next(iter(r)) for r in records] == ["schema", "schema", "lens", "lens", "index", "index", "index"]
    dst = ostracon.open()
    assert dst.import_definitions(records) == {"schemas": 2, "lenses": 2, "indexes": 3}
    assert dst.schema_versions() == src.schema_versions() == {"Todo": v2}
    assert [h["version_id"] for h in dst.schema_history("Todo")] == [v1, v2]
    # Validation: the current version's rules hold in the importing store.
    with pytest.raises(ostracon.SchemaValidationError):
        dst.collection("Todo").create({"name": "no title"})
    # Lens reads: a document written under v1 in the importing store reads as v2.
    todo = dst.collection("Todo")
    todo.refresh_schema()
    assert {i["name"]: (i["fields"], i["unique"]) for i in dst.collection("users").indexes()} == {
        "uidx_email": (["email"], True), "by_team": (["team", "age"], False)}
    assert "idx_done" in [i["name"] for i in todo.indexes()]   # the schema's @index
    dst.collection("users").create({"email": "a@x"})
    with pytest.raises(ostracon.ConflictError):
        dst.collection("users").create({"email": "a@x"})
    # Records repeated in one import count once.
    again = ostracon.open()
    assert again.import_definitions(records + records) == {"schemas": 2, "lenses": 2, "indexes": 3}
    assert again.definitions() == records
    again.close()
    # A second import (or one into the source) changes nothing.
    before = state(dst)
    assert dst.import_definitions(records) == {"schemas": 0, "lenses": 0, "indexes": 0}
    assert state(dst) == before
    before = state(src)
    assert src.import_definitions(records) == {"schemas": 0, "lenses": 0, "indexes": 0}
    assert state(src) == before
    src.close()
    dst.close()


def test_imported_versions_and_lenses_replicate_like_defined_ones():
    src, v1, v2 = source()
    dst = ostracon.open()
    dst.import_definitions(src.definitions())
    # A v1 document from a peer reads through the imported lens on a third replica.
    peer = ostracon.open()
    src.flush()
    dst.flush()   # blocks are served once sealed and durable
    peer.apply_blocks(dst.blocks_since({}))
    assert peer.schema_versions() == {"Todo": v2}

    def schemas_and_lenses(db):
        return [r for r in db.definitions() if "index" not in r]
    assert schemas_and_lenses(peer) == schemas_and_lenses(src)
    peer.apply_blocks(src.blocks_since({}))
    got = peer.collection("Todo").get("a")
    assert got["title"] == "old one" and "name" not in got
    for db in (src, dst, peer):
        db.close()


def _hostile(src) -> list[tuple[str, list, type]]:
    recs = src.definitions()
    s0, s1, lens = recs[0], recs[1], recs[2]
    tampered = copy.deepcopy(s1)
    raw = bytearray(base64.b64decode(tampered["schema"]["data"]))
    raw[-1] ^= 1
    tampered["schema"]["data"] = base64.b64encode(bytes(raw)).decode()
    wrong_id = copy.deepcopy(s1)
    wrong_id["schema"]["id"] = s0["schema"]["id"]
    bad_lens = copy.deepcopy(lens)
    bad_lens["lens"]["data"] = base64.b64encode(encode([{"op": "explode"}])).decode()
    cross = copy.deepcopy(lens)
    cross["lens"]["to"] = cross["lens"]["from"]
    not_b64 = copy.deepcopy(s0)
    not_b64["schema"]["data"] = "!!!"
    reserved = {"schema": {"id": "x", "data": base64.b64encode(encode({"v": 1})).decode()}}
    return [
        ("tampered bytes", [s0, tampered], ostracon.ValidationError),
        ("id of another version", [s0, wrong_id], ostracon.ValidationError),
        ("orphan version", [s1], ostracon.NotFoundError),
        ("unknown lens step", [s0, s1, bad_lens], ostracon.ValidationError),
        ("lens onto itself", [s0, s1, cross], ostracon.ValidationError),
        ("lens between unknown versions", [lens], ostracon.NotFoundError),
        ("not base64", [not_b64], ostracon.ValidationError),
        ("not a schema", [reserved], ostracon.ValidationError),
        ("extra key", [{"schema": {**s0["schema"], "x": 1}}], ostracon.ValidationError),
        ("unknown kind", [{"trigger": {}}], ostracon.ValidationError),
        ("not a record", ["schema"], ostracon.ValidationError),
        ("index fields", [{"index": {"collection": "c", "fields": "a", "unique": False, "name": None}}],
         ostracon.ValidationError),
        ("index collection", [{"index": {"collection": "ostracon.x", "fields": ["a"], "unique": 1,
                                         "name": None}}], ostracon.ValidationError),
        ("too many", [s0] * (MAX_DEFINITIONS + 1), ostracon.ValidationError),
    ]


@pytest.mark.parametrize("case", range(14))
def test_a_hostile_record_anywhere_is_refused_and_nothing_is_imported(case):
    src, _, _ = source()
    what, bad, error = _hostile(src)[case]
    dst = ostracon.open()
    dst.collection("users").create({"email": "a@x"}, id="u")
    before = state(dst)
    good_index = {"index": {"collection": "users", "fields": ["team"], "unique": False, "name": None}}
    with pytest.raises(error):
        dst.import_definitions([good_index, *bad])
    assert state(dst) == before, what
    src.close()
    dst.close()


def test_an_index_the_documents_break_undoes_the_whole_import():
    src, _, _ = source()
    dst = ostracon.open()
    users = dst.collection("users")
    users.create({"email": "same@x"})
    users.create({"email": "same@x"})
    before = state(dst)
    with pytest.raises(ostracon.ConflictError):
        dst.import_definitions([{"index": {"collection": "users", "fields": ["team"], "unique": False,
                                           "name": None}}, *src.definitions()])
    assert state(dst) == before
    assert dst.schema_versions() == {}
    src.close()
    dst.close()
