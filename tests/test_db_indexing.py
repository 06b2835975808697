"""Indexes that just work: a large collection's index builds by itself under the throttle,
the first query waits for it instead of failing, and after a reopen the driver rebuilds
the indexes so the first indexed query answers without a hand-written tick() loop."""

from __future__ import annotations

import pytest

import ostracon

DOCS = 20_000


def fill(db, n: int = DOCS) -> None:
    col = db.collection("c")
    for i in range(n):
        col.create({"k": i % 100, "i": i}, id=f"d{i:06d}")


def test_create_index_on_a_large_collection_then_the_first_find_works(tmp_path):
    path = tmp_path / "db"
    db = ostracon.open(path)
    fill(db)
    db.collection("c").create_index("k")               # > index_sync_build_docs: throttled job
    found = db.collection("c").find({"k": {"_eq": 5}})  # waits for the driver's build
    assert sorted(d["i"] for d in found) == list(range(5, DOCS, 100))
    assert db.collection("c").explain({"k": {"_eq": 5}})["path"] == "index"
    db.close()

    db = ostracon.open(path)                             # indexes open warm; the driver rebuilds
    found = db.collection("c").find({"k": {"_eq": 7}})
    assert sorted(d["i"] for d in found) == list(range(7, DOCS, 100))
    assert [i["state"] for i in db.collection("c").indexes()] == ["ready"]
    db.close()


def test_create_index_wait_returns_when_ready_and_reports_progress(tmp_path):
    db = ostracon.open(tmp_path / "db")
    fill(db, 8_000)
    seen = []
    name = db.collection("c").create_index("k", wait=True, progress=lambda done, total: seen.append((done, total)))
    assert [i["state"] for i in db.collection("c").indexes() if i["name"] == name] == ["ready"]
    assert seen and seen[-1] == (8_000, 8_000)
    assert all(d <= t for d, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    db.close()


def test_without_a_driver_a_query_during_a_build_raises_at_once():
    t = [1_000]
    db = ostracon.open(clock=lambda: t[0], index_sync_build_docs=10, fallback_docs_max=10)
    fill(db, 50)
    db.collection("c").create_index("k")
    with pytest.raises(ostracon.IndexBuildingError):
        db.collection("c").find({"k": {"_eq": 5}})
    for _ in range(3):                                  # the caller drives the rebuild
        t[0] += 1_000
        db.tick()
    assert len(db.collection("c").find({"k": {"_eq": 5}})) == 1
    db.close()


def test_an_index_wait_timeout_of_zero_raises_instead_of_waiting(tmp_path):
    db = ostracon.open(tmp_path / "db", index_wait_ms=0, rebuild_rate_docs_per_s=1,
                       fallback_docs_max=10)
    fill(db, 6_000)
    db.collection("c").create_index("k")
    with pytest.raises(ostracon.IndexBuildingError) as e:
        db.collection("c").find({"k": {"_eq": 5}})
    assert e.value.eta_ms > 0
    db.close()
