"""Thread safety (docs/STORAGE.md, Threads): many threads write, read and flush one file
database at once; after close and reopen every acknowledged write is present and the
database verifies. Seeded: the seed is printed on failure."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import ostracon
from ostracon.cli import verify_database

SEED = 1212
WRITERS = 8
WRITES = 5_000


def writer(db, t: int, n: int, seed: int, model: dict) -> None:
    """n mixed writes to documents only this thread touches; `model` gets the expected
    final user fields (None: deleted)."""
    rng = random.Random(seed)
    col = db.collection(f"c{t % 3}")
    live: list[str] = []
    made = 0
    for _ in range(n):
        r = rng.random()
        if r < 0.3 or not live:
            doc_id = f"t{t}-{made}"
            made += 1
            v = rng.randrange(1000)
            col.create({"t": t, "v": v}, id=doc_id)
            model[doc_id] = {"t": t, "v": v}
            live.append(doc_id)
        elif r < 0.5:
            doc_id = rng.choice(live)
            v = rng.randrange(1000)
            col.patch(doc_id, {"v": v})
            model[doc_id]["v"] = v
        elif r < 0.65:
            doc_id = rng.choice(live)
            col.increment(doc_id, "c", 2)
            model[doc_id]["c"] = model[doc_id].get("c", 0) + 2
        elif r < 0.75:
            doc_id = live.pop(rng.randrange(len(live)))
            col.delete(doc_id)
            model[doc_id] = None
        else:
            doc_id = rng.choice(live) if rng.random() < 0.5 else f"t{t}-{made}"
            if doc_id == f"t{t}-{made}":
                made += 1
                live.append(doc_id)
            w = rng.randrange(1000)
            col.upsert(doc_id, {"w": w, "t": t})
            fields = model.get(doc_id) or {}
            fields.update({"w": w, "t": t})
            model[doc_id] = fields


def reader(db, stop: threading.Event, seed: int, errors: list) -> None:
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            col = db.collection(f"c{rng.randrange(3)}")
            col.find({"v": {"_lt": rng.randrange(1000)}}, limit=20, fallback_docs_max=1_000_000)
            col.get(f"t{rng.randrange(WRITERS)}-{rng.randrange(100)}")
            col.scan(limit=50)
            col.count()
            db.changes(limit=10)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def flusher(db, stop: threading.Event, errors: list) -> None:
    try:
        while not stop.wait(0.02):
            db.flush()
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)


def check_reopened(path, model: dict, where: str) -> None:
    db = ostracon.open(path)
    try:
        assert verify_database(db) == [], where
        for doc_id, fields in model.items():
            t = int(doc_id[1:].split("-")[0])
            doc = db.collection(f"c{t % 3}").get(doc_id)
            if fields is None:
                assert doc is None, f"{where}: {doc_id} should be deleted"
            else:
                assert doc is not None, f"{where}: acknowledged {doc_id} is missing"
                got = {k: v for k, v in doc.items() if not k.startswith("_")}
                assert got == fields, f"{where}: {doc_id}"
        assert db.replica.pending_count == 0, where
    finally:
        db.close()


def test_eight_threads_of_mixed_writes_with_readers_and_flushes(tmp_path):
    where = f"seed {SEED}"
    path = tmp_path / "db"
    db = ostracon.open(path)
    models: list[dict] = [{} for _ in range(WRITERS)]
    stop = threading.Event()
    errors: list = []
    side = [threading.Thread(target=reader, args=(db, stop, SEED + 100 + i, errors)) for i in range(2)]
    side.append(threading.Thread(target=flusher, args=(db, stop, errors)))
    for th in side:
        th.start()
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(writer, db, t, WRITES, SEED + t, models[t]) for t in range(WRITERS)]
        for f in futures:
            f.result()
    stop.set()
    for th in side:
        th.join()
    assert errors == [], f"{where}: {errors[:3]}"
    db.close()
    model = {k: v for m in models for k, v in m.items()}
    check_reopened(path, model, where)


def test_asyncio_code_calling_the_sync_api_from_executor_threads(tmp_path):
    where = f"seed {SEED}"
    path = tmp_path / "db"
    models: list[dict] = [{} for _ in range(WRITERS)]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        db = await loop.run_in_executor(None, lambda: ostracon.open(path))
        with ThreadPoolExecutor(WRITERS) as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, writer, db, t, 1_000, SEED + 50 + t, models[t])
                                   for t in range(WRITERS)))
            await loop.run_in_executor(pool, db.flush)
            await loop.run_in_executor(pool, db.close)

    asyncio.run(main())
    model = {k: v for m in models for k, v in m.items()}
    check_reopened(path, model, where)


def test_subscription_poll_races_with_writers_and_loses_nothing(tmp_path):
    """Writers on several threads publish while another thread polls and a third closes
    other subscriptions: every event arrives exactly once, in feed order."""
    import sys
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # switch threads as often as possible: races show up
    try:
        with ostracon.open(tmp_path / "db") as db:
            sub = db.subscribe(buffer=1_000_000)
            stop = threading.Event()
            got: list[int] = []
            errors: list[BaseException] = []

            def poller() -> None:
                try:
                    while not stop.is_set():
                        got.extend(ev.seq for ev in sub.poll())
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    errors.append(exc)

            def churn() -> None:
                try:
                    while not stop.is_set():
                        db.subscribe(buffer=5).close()
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            def write(t: int) -> None:
                col = db.collection("c")
                for i in range(400):
                    col.create({"i": i}, id=f"{t}-{i}")

            threads = [threading.Thread(target=poller), threading.Thread(target=churn)]
            for t in threads:
                t.start()
            with ThreadPoolExecutor(4) as ex:
                list(ex.map(write, range(4)))
            stop.set()
            for t in threads:
                t.join()
            got.extend(ev.seq for ev in sub.poll())
            assert not errors, errors
            assert got == list(range(1, 1601))
    finally:
        sys.setswitchinterval(old)


def test_schema_violations_and_tier_moves_race_with_a_writer(tmp_path):
    # schema_violations() wakes a cold collection and walks its documents: both must happen
    # under the database lock while another thread writes.
    db = ostracon.open(tmp_path / "db", sink_interval_ms=3_600_000)
    db.define_schema("type t { n: Int  s: String @index }")
    col = db.collection("t")
    errors: list = []
    n = 2000

    def write() -> None:
        try:
            for i in range(n):
                col.create({"n": i, "s": f"v{i % 50}"}, id=f"d{i}")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def sweep() -> None:
        try:
            for _ in range(n // 5):
                col.set_tier("cold")
                col.restore()
                col.schema_violations()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=sweep)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert col.schema_violations() == []
    assert [i["entries"] for i in col.indexes()] == [n]
    assert sorted(d["_id"] for d in col.find({"s": "v7"})) == sorted(f"d{i}" for i in range(n) if i % 50 == 7)
    db.close()
