"""Index rebuilds under back-pressure, and the hot/warm/cold collection policy.

Cooperative, no threads (it must run in Pyodide): the owner calls `step(now_ms)` from its
event loop (or after writes) with an injected clock; each call does at most what the rate
budget allows and returns at once. `next_wakeup_ms(now_ms)` says when calling again is
useful.

Rules:
- Work is done in batches of `batch_size` (500) documents, read through a `fetch(cursor,
  limit) -> (docs, next_cursor)` callable (the shape of `Collection.scan(after=, limit=)`;
  next_cursor None = finished). Documents are read live, and the index receives every change
  while it builds (CollectionIndexes.apply_change keeps building indexes up to date), so a
  rebuild never needs a snapshot and never misses a concurrent write.
- Rate cap per collection (default 5,000 docs/s): a token bucket in integer milli-docs. The
  bucket of a collection starts EMPTY when its first job starts, so from that moment on
  `processed <= rate × elapsed` holds exactly: 10,000 documents take at least 2 s. A batch
  runs only when a whole batch is affordable. Unused budget accrues up to `burst_ms` (1 s)
  so an owner that steps rarely still reaches the full rate.
- At most `max_concurrent` (2) jobs run at once across all collections; others wait FIFO.
- Triggers (the `reason`): "new_index", "gap" (change-feed cursor gap), "overflow"
  (subscriber buffer overflow), "warm" (a warm collection became hot again), "manual".
  Scheduling empties the indexes and marks them "building"; the planner ignores them until
  the job is done (see planner.py for what queries do meanwhile).

Hot/warm/cold (policy only; the Database holds the data). The tier decides what memory a
collection holds, never what it answers: every read and write answers on a warm or cold
collection exactly as on a hot one (docs/QUERIES.md, "Hot, warm and cold collections").
- hot: documents in memory, indexes ready (or building).
- warm: documents in memory, index entries dropped to save memory; the next access makes
  the collection hot again and rebuilds its indexes (at once when small, else under the
  throttle; queries meanwhile as during any rebuild).
- cold: warm, and the sorted id order freed too (the replica keeps every document's CRDT
  state: it needs it to merge and to hash). The next access goes cold → warm → hot in one
  step, like an access to a warm collection.
Idle time decides demotion: `sweep(now_ms)` reports hot→warm after `warm_after_ms` and
warm→cold after `cold_after_ms` without access. `CollectionMeta.to_record()` is the plain
dict the Database persists (state, last access, index states).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import OstraconError, ValidationError
from .index import BUILDING, DROPPED, READY, CollectionIndexes, Index

__all__ = ["RebuildScheduler", "RebuildJob", "RebuildEvent", "TieringPolicy", "CollectionMeta",
           "HOT", "WARM", "COLD", "REASONS"]

# Defaults (named, documented): 500 docs per batch keeps one step short (~2-5 ms of indexing
# in CPython, a few frames in Pyodide); 5,000 docs/s leaves most of each second to the app;
# two concurrent rebuilds bound memory and CPU while letting a small collection overtake.
BATCH_SIZE = 500
RATE_DOCS_PER_S = 5_000
MAX_CONCURRENT = 2
BURST_MS = 1_000
# Demotion thresholds: 10 min idle → drop index entries; 24 h idle → drop the id order too.
WARM_AFTER_MS = 10 * 60_000
COLD_AFTER_MS = 24 * 3_600_000

REASONS = frozenset({"new_index", "gap", "overflow", "warm", "manual"})
HOT, WARM, COLD = "hot", "warm", "cold"

Fetch = Callable[[Any, int], "tuple[list[dict], Any]"]


@dataclass
class RebuildJob:
    job_id: int
    collection: str
    indexes: list
    fetch: Fetch
    reason: str
    created_ms: int
    state: str = "pending"          # pending | running | done | failed
    cursor: Any = None
    processed: int = 0
    batches: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None
    error: str | None = None

    def describe(self) -> dict:
        return {"job": self.job_id, "collection": self.collection, "reason": self.reason,
                "indexes": [i.name for i in self.indexes], "state": self.state,
                "processed": self.processed, "batches": self.batches,
                "started_ms": self.started_ms, "finished_ms": self.finished_ms,
                "error": self.error}


@dataclass(frozen=True)
class RebuildEvent:
    kind: str            # started | batch | done | failed
    job_id: int
    collection: str
    docs: int
    at_ms: int


class _Bucket:
    __slots__ = ("tokens", "last_ms")

    def __init__(self, now_ms: int):
        self.tokens = 0
        self.last_ms = now_ms


class RebuildScheduler:
    def __init__(self, *, batch_size: int = BATCH_SIZE, rate_docs_per_s: int = RATE_DOCS_PER_S,
                 max_concurrent: int = MAX_CONCURRENT, burst_ms: int = BURST_MS):
        for name, v in (("batch_size", batch_size), ("rate_docs_per_s", rate_docs_per_s),
                        ("max_concurrent", max_concurrent), ("burst_ms", burst_ms)):
            if type(v) is not int or v <= 0:
                raise ValidationError(f"RebuildScheduler: {name} must be a positive int")
        self.batch_size = batch_size
        self.rate = rate_docs_per_s
        self.max_concurrent = max_concurrent
        # Capacity in milli-docs: at least one batch, else at most burst_ms of budget.
        self._cap = max(batch_size * 1000, rate_docs_per_s * burst_ms)
        self._pending: deque[RebuildJob] = deque()
        self._running: list[RebuildJob] = []
        self._finished: deque[RebuildJob] = deque(maxlen=100)  # recent history for status
        self._buckets: dict[str, _Bucket] = {}
        self._next_id = 1

    # --- scheduling ----------------------------------------------------------------------
    def schedule(self, collection: str, indexes: Iterable[Index], fetch: Fetch, *, reason: str,
                 now_ms: int) -> RebuildJob:
        """Queue a rebuild of `indexes` (Index objects) of `collection`. Empties them now."""
        if reason not in REASONS:
            raise ValidationError(f"rebuild reason must be one of {sorted(REASONS)}, got {reason!r}")
        indexes = list(indexes)
        for idx in indexes:
            if not isinstance(idx, Index):
                raise ValidationError("schedule: indexes must be Index objects")
            # An index already being filled by a running job restarts from scratch here.
            for job in self._running:
                if job.collection == collection and idx in job.indexes:
                    job.indexes.remove(idx)
            idx.clear()
            idx.state = BUILDING
        for job in self._pending:
            if job.collection == collection:
                for idx in indexes:
                    if idx not in job.indexes:
                        job.indexes.append(idx)
                if reason not in job.reason.split("+"):
                    job.reason = f"{job.reason}+{reason}"
                return job
        job = RebuildJob(self._next_id, collection, indexes, fetch, reason, now_ms)
        self._next_id += 1
        self._pending.append(job)
        return job

    def cancel(self, collection: str) -> int:
        """Drop every job of a collection (dropped or demoted to cold). Returns how many."""
        n = 0
        for job in list(self._pending):
            if job.collection == collection:
                self._pending.remove(job)
                n += 1
        for job in list(self._running):
            if job.collection == collection:
                self._running.remove(job)
                n += 1
        return n

    # --- running ----------------------------------------------------------------------
    def _refill(self, b: _Bucket, now_ms: int) -> None:
        if now_ms > b.last_ms:  # a clock going backwards never mints budget
            b.tokens = min(self._cap, b.tokens + (now_ms - b.last_ms) * self.rate)
            b.last_ms = now_ms

    def _start_pending(self, now_ms: int, events: list) -> None:
        while self._pending and len(self._running) < self.max_concurrent:
            job = self._pending.popleft()
            if not any(j.collection == job.collection for j in self._running):
                self._buckets[job.collection] = _Bucket(now_ms)  # starts empty: see module doc
            job.state = "running"
            job.started_ms = now_ms
            self._running.append(job)
            events.append(RebuildEvent("started", job.job_id, job.collection, 0, now_ms))

    def step(self, now_ms: int) -> list[RebuildEvent]:
        """Do the work the budget allows at `now_ms`; returns what happened."""
        if type(now_ms) is not int:
            raise ValidationError("step: now_ms must be an int (milliseconds)")
        events: list[RebuildEvent] = []
        self._start_pending(now_ms, events)
        batch_cost = self.batch_size * 1000
        progressed = True
        while progressed:
            progressed = False
            for job in list(self._running):
                b = self._buckets[job.collection]
                self._refill(b, now_ms)
                if b.tokens < batch_cost:
                    continue
                progressed = True
                self._run_batch(job, b, now_ms, events)
                if job.state != "running":
                    self._running.remove(job)
                    self._finished.append(job)
                    self._start_pending(now_ms, events)
        return events

    def _run_batch(self, job: RebuildJob, b: _Bucket, now_ms: int, events: list) -> None:
        if not job.indexes:  # every index moved to a newer job or was dropped: nothing to do
            job.state = "done"
            job.finished_ms = now_ms
            events.append(RebuildEvent("done", job.job_id, job.collection, job.processed, now_ms))
            return
        try:
            docs, nxt = job.fetch(job.cursor, self.batch_size)
        except OstraconError as e:
            job.state = "failed"
            job.error = f"{type(e).__name__}: {e}"
            job.finished_ms = now_ms
            events.append(RebuildEvent("failed", job.job_id, job.collection, 0, now_ms))
            return
        targets = [i for i in job.indexes if i.state == BUILDING]
        for d in docs:
            if d.get("_deleted"):
                continue
            did = d["_id"]
            for idx in targets:
                idx.put(did, d)
        n = len(docs)
        b.tokens -= n * 1000
        job.processed += n
        job.batches += 1
        job.cursor = nxt
        events.append(RebuildEvent("batch", job.job_id, job.collection, n, now_ms))
        if nxt is None:
            for idx in job.indexes:
                if idx.state == BUILDING:
                    idx.state = READY
            job.state = "done"
            job.finished_ms = now_ms
            events.append(RebuildEvent("done", job.job_id, job.collection, job.processed, now_ms))

    def next_wakeup_ms(self, now_ms: int) -> int | None:
        """When a step can do work next (now_ms if pending jobs can start); None = idle."""
        if self._pending and len(self._running) < self.max_concurrent:
            return now_ms
        best = None
        need = self.batch_size * 1000
        for job in self._running:
            b = self._buckets[job.collection]
            tokens = min(self._cap, b.tokens + max(0, now_ms - b.last_ms) * self.rate)
            t = now_ms if tokens >= need else now_ms + -(-(need - tokens) // self.rate)
            best = t if best is None else min(best, t)
        return best

    # --- status -------------------------------------------------------------------------
    @property
    def running(self) -> list[RebuildJob]:
        return list(self._running)

    @property
    def pending(self) -> list[RebuildJob]:
        return list(self._pending)

    def idle(self) -> bool:
        return not self._running and not self._pending

    def status(self, collection: str | None = None) -> list[dict]:
        jobs = list(self._running) + list(self._pending) + list(self._finished)
        return [j.describe() for j in jobs if collection is None or j.collection == collection]

    def eta_ms(self, collection: str, remaining_docs: int) -> int:
        """Lower bound on the time to index `remaining_docs` more documents at the cap."""
        return -(-max(0, remaining_docs) * 1000 // self.rate)


# --------------------------------------------------------------------------------------
# Hot / warm / cold

@dataclass
class CollectionMeta:
    name: str
    state: str = HOT
    last_access_ms: int = 0
    state_since_ms: int = 0
    index_state: dict = field(default_factory=dict)   # index name -> ready/building/dropped

    def to_record(self) -> dict:
        return {"name": self.name, "state": self.state, "last_access_ms": self.last_access_ms,
                "state_since_ms": self.state_since_ms, "index_state": dict(self.index_state)}

    @classmethod
    def from_record(cls, rec: Any) -> CollectionMeta:
        try:
            m = cls(str(rec["name"]), rec["state"], int(rec["last_access_ms"]),
                    int(rec["state_since_ms"]), dict(rec["index_state"]))
        except (KeyError, TypeError, ValueError):
            raise ValidationError("collection metadata record is malformed") from None
        if m.state not in (HOT, WARM, COLD) or not all(
                v in (READY, BUILDING, DROPPED) for v in m.index_state.values()):
            raise ValidationError("collection metadata record has an unknown state")
        return m


class TieringPolicy:
    """Decides hot/warm/cold from access times; the Database applies the transitions."""

    def __init__(self, *, warm_after_ms: int = WARM_AFTER_MS, cold_after_ms: int = COLD_AFTER_MS):
        if not (0 < warm_after_ms <= cold_after_ms):
            raise ValidationError("TieringPolicy: need 0 < warm_after_ms <= cold_after_ms")
        self.warm_after_ms = warm_after_ms
        self.cold_after_ms = cold_after_ms
        self._meta: dict[str, CollectionMeta] = {}

    def meta(self, name: str, now_ms: int = 0) -> CollectionMeta:
        m = self._meta.get(name)
        if m is None:
            m = self._meta[name] = CollectionMeta(name, HOT, now_ms, now_ms)
        return m

    def load(self, records: Iterable[dict]) -> None:
        for rec in records:
            m = CollectionMeta.from_record(rec)
            self._meta[m.name] = m

    def records(self) -> list[dict]:
        return [self._meta[n].to_record() for n in sorted(self._meta)]

    def sync_indexes(self, name: str, indexes: CollectionIndexes) -> None:
        self.meta(name).index_state = {i.name: i.state for i in indexes}

    def touch(self, name: str, now_ms: int) -> CollectionMeta:
        """Record an access. A cold collection becomes warm here (its documents never left
        memory); the caller checks `state == WARM` and calls `activate` to bring indexes
        back, so an access answers the same in every tier."""
        m = self.meta(name, now_ms)
        if m.state == COLD:
            m.state, m.state_since_ms = WARM, now_ms
        m.last_access_ms = max(m.last_access_ms, now_ms)
        return m

    def sweep(self, now_ms: int) -> list[tuple[str, str, str]]:
        """Transitions due by idle time: (name, from, to). Applied to the metadata here; the
        caller frees memory (`make_warm` / unload documents) accordingly."""
        out = []
        for name in sorted(self._meta):
            m = self._meta[name]
            idle = now_ms - m.last_access_ms
            if m.state == HOT and idle >= self.warm_after_ms:
                out.append((name, HOT, WARM))
                m.state, m.state_since_ms = WARM, now_ms
            if m.state == WARM and idle >= self.cold_after_ms:
                out.append((name, WARM, COLD))
                m.state, m.state_since_ms = COLD, now_ms
        return out

    def make_warm(self, name: str, indexes: CollectionIndexes | None, now_ms: int,
                  scheduler: RebuildScheduler | None = None) -> None:
        m = self.meta(name, now_ms)
        if scheduler is not None:
            scheduler.cancel(name)
        if indexes is not None:
            indexes.drop_data()
            self.sync_indexes(name, indexes)
        if m.state != WARM:
            m.state, m.state_since_ms = WARM, now_ms

    def make_cold(self, name: str, now_ms: int, scheduler: RebuildScheduler | None = None) -> None:
        m = self.meta(name, now_ms)
        if scheduler is not None:
            scheduler.cancel(name)
        m.state, m.state_since_ms = COLD, now_ms
        m.index_state = {k: DROPPED for k in m.index_state}

    def restore(self, name: str, now_ms: int) -> CollectionMeta:
        """Cold → warm (the Database has loaded the documents). Indexes come back on use."""
        m = self.meta(name, now_ms)
        if m.state == COLD:
            m.state, m.state_since_ms = WARM, now_ms
        m.last_access_ms = max(m.last_access_ms, now_ms)
        return m

    def activate(self, name: str, indexes: CollectionIndexes, scheduler: RebuildScheduler,
                 fetch: Fetch, now_ms: int) -> RebuildJob | None:
        """Warm → hot: schedule the rebuild of every index (under the throttle)."""
        m = self.touch(name, now_ms)
        job = None
        if m.state == WARM:
            idxs = [i for i in indexes if i.state == DROPPED]
            if idxs:
                job = scheduler.schedule(name, idxs, fetch, reason="warm", now_ms=now_ms)
            m.state, m.state_since_ms = HOT, now_ms
        self.sync_indexes(name, indexes)
        return job
