"""compact(prune_before=...): bodies go, a verifiable checkpoint stays, nothing is silent."""

import pytest

import ostracon
from ostracon.cli import verify_database


def _db(tmp_path, t):
    return ostracon.open(tmp_path / "db", clock=lambda: t[0])


def test_prune_keeps_state_and_says_so(tmp_path):
    t = [1_000_000]
    db = _db(tmp_path, t)
    col = db.collection("notes")
    col.create({"text": "v1"}, id="n1")
    for i in range(2, 6):
        t[0] += 1000
        col.patch("n1", {"text": f"v{i}"})
    old_cid = col.history("n1")[0]["cid"]
    before = db.state_hash()
    db.compact(prune_before=1_002_500)
    cp = db.checkpoint
    assert cp["pruned"] == 3 and cp["state_hash"] == before and cp["horizon"] == 1_002_500
    assert db.state_hash() == before and col.get("n1")["text"] == "v5"
    with pytest.raises(ostracon.HistoryPrunedError):
        col.history("n1")
    rest = col.history("n1", allow_pruned=True)
    assert rest[0] == {"pruned": 3, "horizon": 1_002_500} and len(rest) == 3
    with pytest.raises(ostracon.HistoryPrunedError):
        col.get("n1", at=old_cid)
    with pytest.raises(ostracon.HistoryPrunedError):
        db.blocks_since({})
    assert verify_database(db) == []
    db.close()
    # Reopen: the checkpoint and the pruned set survive; writes continue.
    db = _db(tmp_path, t)
    assert db.checkpoint == cp and db.state_hash() == before
    db.collection("notes").patch("n1", {"text": "v6"})
    assert db.collection("notes").get("n1")["text"] == "v6"
    db.flush()
    assert verify_database(db) == []
    db.close()


def test_prune_never_drops_heads_and_validates_input(tmp_path):
    t = [5_000]
    db = _db(tmp_path, t)
    db.collection("c").create({"a": 1}, id="x")
    db.compact(prune_before=10**12)  # everything is older, but the head must stay
    assert db.collection("c").history("x")[0]["cid"] == db.heads()[0]
    with pytest.raises(ostracon.ValidationError):
        db.compact(prune_before=-1)
    db.close()
