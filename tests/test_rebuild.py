"""Index rebuilds under a rate cap with an injected clock, and hot/warm/cold (core.rebuild)."""

import random

import pytest

from ostracon.core.errors import StorageError, ValidationError
from ostracon.core.query.filters import IndexBuildingError, select
from ostracon.core.query.index import BUILDING, DROPPED, READY, CollectionIndexes
from ostracon.core.query.planner import DictSource, QueryEngine
from ostracon.core.query.rebuild import (
    COLD,
    HOT,
    WARM,
    CollectionMeta,
    RebuildScheduler,
    TieringPolicy,
)


def collection(n, name="c", seed=0):
    rng = random.Random(seed)
    ci = CollectionIndexes(name)
    src = DictSource(({"_id": f"{name}{i:06d}", "k": rng.randint(0, 99)} for i in range(n)),
                     listener=ci.apply_change)
    return src, ci


def entries(idx):
    return list(idx.entries)


def test_rate_cap_10k_docs_take_at_least_2s_of_fake_time():
    src, ci = collection(10_000)
    idx = ci.create_index("k")
    sched = RebuildScheduler()  # defaults: 500/batch, 5,000 docs/s, 2 concurrent
    sched.schedule("c", [idx], src.scan, reason="new_index", now_ms=0)
    t, processed, done_at, batch_sizes = 0, 0, None, []
    while done_at is None:
        for ev in sched.step(t):
            if ev.kind == "batch":
                processed += ev.docs
                batch_sizes.append(ev.docs)
            if ev.kind == "done":
                done_at = t
        # the cap, observed through the injected clock: never more than 5 docs per ms
        assert processed <= 5 * t
        t += 10
        assert t < 10_000
    assert processed == 10_000 and done_at >= 2_000
    assert all(b <= 500 for b in batch_sizes) and batch_sizes.count(500) == 20
    assert idx.state == READY
    want = CollectionIndexes("c").create_index("k", docs=src.iter_docs())
    assert entries(idx) == entries(want)


def test_rare_steps_still_reach_the_rate_but_never_exceed_it():
    src, ci = collection(10_000)
    idx = ci.create_index("k")
    sched = RebuildScheduler()
    sched.schedule("c", [idx], src.scan, reason="new_index", now_ms=5)
    processed, t = 0, 5
    while not sched.idle():
        t += 700
        processed += sum(e.docs for e in sched.step(t) if e.kind == "batch")
        assert processed <= 5 * (t - 5)
    assert processed == 10_000 and t - 5 >= 2_000 and t - 5 <= 2_800 + 700


def test_next_wakeup_is_exact():
    src, ci = collection(2_000)
    idx = ci.create_index("k")
    sched = RebuildScheduler(rate_docs_per_s=1_000, batch_size=250)
    sched.schedule("c", [idx], src.scan, reason="manual", now_ms=0)
    assert sched.next_wakeup_ms(0) == 0
    sched.step(0)
    t, steps = 0, 0
    while not sched.idle():
        w = sched.next_wakeup_ms(t)
        assert w == t + 250 or w == t  # 250 docs at 1 doc/ms
        # one ms before the wakeup nothing can happen
        assert [e for e in sched.step(w - 1) if e.kind == "batch"] == [] or w == t
        t = w
        sched.step(t)
        steps += 1
    assert idx.state == READY and t >= 2_000
    assert sched.next_wakeup_ms(t) is None


def test_at_most_two_concurrent_rebuilds_fifo():
    cols = {n: collection(1_200, n, seed=i) for i, n in enumerate("abc")}
    sched = RebuildScheduler()
    for n, (src, ci) in cols.items():
        sched.schedule(n, [ci.create_index("k")], src.scan, reason="new_index", now_ms=0)
    started, finished = [], []
    for t in range(0, 5_000, 20):
        for ev in sched.step(t):
            if ev.kind == "started":
                started.append((ev.collection, t))
            if ev.kind == "done":
                finished.append((ev.collection, t))
        assert len(sched.running) <= 2
    assert [c for c, _ in started] == ["a", "b", "c"]
    assert started[2][1] >= min(t for _, t in finished)  # c waited for a slot
    # a and b ran side by side, each at its own 5,000 docs/s budget
    assert started[0][1] == started[1][1] == 0
    assert all(ci.get("idx_k").state == READY for _, ci in cols.values())


def test_changes_during_rebuild_are_not_lost():
    src, ci = collection(3_000, seed=3)
    idx = ci.create_index("k")
    sched = RebuildScheduler(batch_size=100)
    sched.schedule("c", [idx], src.scan, reason="new_index", now_ms=0)
    rng = random.Random(9)
    t = 0
    while not sched.idle():
        t += 7
        sched.step(t)
        for _ in range(rng.randint(0, 5)):  # writes interleaved with the job
            ids = sorted(src.docs)
            r = rng.random()
            if r < 0.4:
                src.put({"_id": f"c{rng.randint(0, 5_000):06d}", "k": rng.randint(0, 99)})
            elif r < 0.7:
                src.delete(rng.choice(ids))
            else:
                src.put({**src.get(rng.choice(ids)), "k": -1})
    want = CollectionIndexes("c").create_index("k", docs=src.iter_docs())
    assert entries(idx) == entries(want)


def test_gap_or_overflow_rebuild_clears_and_refills():
    src, ci = collection(1_000)
    idx = ci.create_index("k", docs=src.iter_docs())
    before = entries(idx)
    ci.get("idx_k").entries.remove(before[0])  # simulate a missed event: the index drifted
    sched = RebuildScheduler()
    job = sched.schedule("c", [idx], src.scan, reason="gap", now_ms=0)
    assert idx.state == BUILDING and len(idx) == 0
    assert sched.schedule("c", [idx], src.scan, reason="overflow", now_ms=0) is job  # merged
    assert job.reason == "gap+overflow"
    t = 0
    while not sched.idle():
        t += 50
        sched.step(t)
    assert entries(idx) == before and idx.state == READY
    with pytest.raises(ValidationError):
        sched.schedule("c", [idx], src.scan, reason="because", now_ms=0)


def test_queries_during_rebuild_fall_back_or_say_building():
    src, ci = collection(2_000)
    idx = ci.create_index("k")
    sched = RebuildScheduler()
    sched.schedule("c", [idx], src.scan, reason="new_index", now_ms=0)
    sched.step(0)
    sched.step(200)  # two batches in: the index is partial
    assert idx.state == BUILDING and 0 < len(idx) < 2_000
    want = select(src.iter_docs(), {"k": 5})[0]
    eng = QueryEngine(src, ci, fallback_docs_max=5_000)
    r = eng.find({"k": 5})
    assert r.plan["path"] == "scan" and r.docs == want  # never the partial index
    eng.fallback_docs_max = 1_000
    with pytest.raises(IndexBuildingError) as e:
        eng.find({"k": 5})
    assert e.value.index == "idx_k" and e.value.progress == len(idx)
    t = 200
    while not sched.idle():  # "wait" = keep stepping the scheduler, then retry
        t = sched.next_wakeup_ms(t)
        sched.step(t)
    r = eng.find({"k": 5})
    assert r.plan["path"] == "index" and r.docs == want


def test_clock_going_backwards_mints_no_budget():
    src, ci = collection(2_000)
    idx = ci.create_index("k")
    sched = RebuildScheduler()
    sched.schedule("c", [idx], src.scan, reason="new_index", now_ms=1_000)
    sched.step(1_000)
    n = sum(e.docs for e in sched.step(1_100) if e.kind == "batch")
    assert n == 500
    for t in (0, 500, 1_050, 1_100):
        assert [e for e in sched.step(t) if e.kind == "batch"] == []
    with pytest.raises(ValidationError):
        sched.step(1.5)


def test_failed_fetch_is_reported_and_index_stays_unusable():
    src, ci = collection(100)
    idx = ci.create_index("k")

    def broken(cursor, limit):
        raise StorageError("disk went away")
    sched = RebuildScheduler()
    sched.schedule("c", [idx], broken, reason="new_index", now_ms=0)
    evs = sched.step(0) + sched.step(100)
    assert [e.kind for e in evs] == ["started", "failed"]
    assert idx.state == BUILDING and sched.idle()
    assert "disk went away" in sched.status("c")[0]["error"]


def test_bad_scheduler_parameters():
    for kw in ({"batch_size": 0}, {"rate_docs_per_s": -1}, {"max_concurrent": 0}, {"burst_ms": 1.5}):
        with pytest.raises(ValidationError):
            RebuildScheduler(**kw)


# --- hot / warm / cold ------------------------------------------------------------------

def test_tiering_lifecycle():
    src, ci = collection(1_500)
    ci.create_index("k", docs=src.iter_docs())
    pol = TieringPolicy(warm_after_ms=1_000, cold_after_ms=5_000)
    sched = RebuildScheduler()
    pol.touch("c", 0)
    assert pol.sweep(999) == []
    assert pol.sweep(1_000) == [("c", HOT, WARM)]
    pol.make_warm("c", ci, 1_000, sched)
    assert ci.get("idx_k").state == DROPPED and len(ci.get("idx_k")) == 0
    assert pol.meta("c").index_state == {"idx_k": DROPPED}
    # access makes it hot again and rebuilds the indexes under the throttle
    job = pol.activate("c", ci, sched, src.scan, 2_000)
    assert job is not None and job.reason == "warm" and pol.meta("c").state == HOT
    assert pol.meta("c").index_state == {"idx_k": BUILDING}
    t = 2_000
    while not sched.idle():
        t += 100
        sched.step(t)
    assert t >= 2_000 + 300 and ci.get("idx_k").state == READY
    pol.sync_indexes("c", ci)
    assert pol.meta("c").index_state == {"idx_k": READY}
    # long idle: warm, then cold; an access makes a cold collection warm (the caller then
    # activates it), and so does an explicit restore
    assert pol.sweep(t + 5_000) == [("c", HOT, WARM), ("c", WARM, COLD)]
    m = pol.touch("c", t + 6_000)
    assert (m.state, m.state_since_ms, m.last_access_ms) == (WARM, t + 6_000, t + 6_000)
    pol.make_cold("c", t + 6_500, sched)
    assert pol.restore("c", t + 7_000).state == WARM
    pol.touch("c", t + 7_001)
    rec = pol.records()
    again = TieringPolicy()
    again.load(rec)
    assert again.records() == rec
    for bad in [{"name": "x"}, {**rec[0], "state": "lukewarm"}, {**rec[0], "index_state": {"i": "?"}}]:
        with pytest.raises(ValidationError):
            CollectionMeta.from_record(bad)


def test_make_cold_cancels_rebuilds():
    src, ci = collection(2_000)
    pol = TieringPolicy()
    sched = RebuildScheduler()
    sched.schedule("c", [ci.create_index("k")], src.scan, reason="new_index", now_ms=0)
    pol.make_cold("c", 10, sched)
    assert sched.idle() and pol.meta("c").state == COLD
    with pytest.raises(ValidationError):
        TieringPolicy(warm_after_ms=10, cold_after_ms=5)


def test_rescheduling_a_running_index_restarts_it():
    src, ci = collection(3_000)
    idx = ci.create_index("k")
    sched = RebuildScheduler()
    first = sched.schedule("c", [idx], src.scan, reason="new_index", now_ms=0)
    sched.step(0)
    sched.step(100)
    assert first.processed == 500
    second = sched.schedule("c", [idx], src.scan, reason="gap", now_ms=100)
    assert second is not first and len(idx) == 0 and first.indexes == []
    t = 100
    while not sched.idle():
        t += 100
        sched.step(t)
    assert first.state == "done" and first.processed == 500  # stopped, not run to the end
    want = CollectionIndexes("c").create_index("k", docs=src.iter_docs())
    assert entries(idx) == entries(want) and idx.state == READY
