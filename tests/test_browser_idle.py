"""The worker's idle tick (ostracon.runtime.browser.idle), natively through the host's RPC
entry: background work runs in steps and gives way to calls waiting in the worker or later
in the same RPC batch (the worker's queue is a callback here)."""

from __future__ import annotations

import pytest

from ostracon.runtime.browser.host import Host
from test_browser_host import FFI, JS_NULL, call, make_host  # noqa: F401  (fixture)


@pytest.fixture()
def new_host(make_host):  # noqa: F811
    return make_host


def _long_log(h: Host, name: str) -> int:
    from ostracon.runtime.browser.idle import COMPACT_LOG_RECORDS

    call(h, "open", {"name": name})
    n = COMPACT_LOG_RECORDS + 10
    for start in range(0, n, 500):  # a createMany is one atomic batch: at most 1000
        call(h, "createMany", "c", [{"i": i} for i in range(start, min(n, start + 500))])
    call(h, "flush")
    return h.storage.open_report().records


def test_an_idle_tick_postpones_compaction_while_calls_wait(new_host):
    h = new_host()
    records = _long_log(h, "busy")
    waiting = [True]
    h.calls_waiting = lambda: waiting[0]
    call(h, "tick")
    assert h.storage.load_snapshot() is None and h.storage.open_report().records == records
    waiting[0] = False
    call(h, "tick")
    assert h.storage.load_snapshot() is not None and h.storage.open_report().records == 0


def test_a_tick_batched_with_calls_runs_them_and_postpones_compaction(new_host):
    h = new_host()
    records = _long_log(h, "batched")
    out = h.run([[1, "tick", []], [2, "count", ["c"]]])
    assert [r["id"] for r in out["responses"]] == [1, 2] and FFI.back(out["responses"][1]["result"]) > 0
    assert h.storage.open_report().records == records  # not compacted: a call was waiting
    out = h.run([[3, "count", ["c"]], [4, "tick", []]])
    assert h.storage.open_report().records == 0  # the tick was the batch's last request


class _ViewModel:
    """The read-view side of a storage (IndexedDBStorage's `view_lagging`, `view_backlog`,
    `request_view`, `write_view`) as a count of pending documents: what the idle tick's
    catch-up asks of it, step by step."""

    def __init__(self, storage, backlog: int, on_step=None) -> None:
        self.storage, self.backlog, self.on_step = storage, backlog, on_step
        self.steps: list[int | None] = []
        self.requested: list[int | None] = []

    def __getattr__(self, name):
        return getattr(self.storage, name)

    def view_lagging(self) -> bool:
        return self.backlog > 0

    def view_backlog(self) -> int:
        return self.backlog

    def request_view(self, limit=None) -> None:
        self.requested.append(limit)

    def write_view(self, limit=None) -> bool:
        self.steps.append(limit)
        self.backlog = max(0, self.backlog - (limit or self.backlog))
        if self.on_step is not None:
            self.on_step()
        return self.backlog == 0


def test_the_view_catches_up_in_steps_once_writes_pause_and_stops_for_calls(new_host):
    from ostracon.runtime.browser.idle import VIEW_STEP_DOCS

    h = new_host()
    call(h, "open", {"name": "steps"})
    call(h, "create", "c", {"i": 1})
    waiting = [False]
    h.calls_waiting = lambda: waiting[0]
    model = _ViewModel(h.storage, 3 * VIEW_STEP_DOCS, on_step=lambda: waiting.__setitem__(0, True))
    h.storage = model
    call(h, "tick")  # a write since the last tick: not yet
    assert model.steps == []
    call(h, "tick")  # quiet: steps, until a call arrives during the first one
    assert model.steps == [VIEW_STEP_DOCS] and model.backlog == 2 * VIEW_STEP_DOCS
    waiting[0] = False
    model.on_step = None
    call(h, "tick")
    assert model.steps == [VIEW_STEP_DOCS] * 3 and model.backlog == 0
    h.storage = model.storage


def test_steady_writes_do_not_starve_the_view(new_host):
    from ostracon.runtime.browser.idle import VIEW_MAX_LAG_TICKS

    h = new_host()
    call(h, "open", {"name": "steady"})
    model = _ViewModel(h.storage, 10)
    h.storage = model
    for i in range(VIEW_MAX_LAG_TICKS):
        call(h, "create", "c", {"i": i})
        call(h, "tick")
    assert model.steps == []
    call(h, "create", "c", {"i": -1})
    call(h, "tick")
    assert model.steps and model.backlog == 0
    assert model.requested  # the sink's queued batch carried the first step
    h.storage = model.storage


def test_a_call_arriving_during_compaction_is_answered_before_it_finishes(new_host, monkeypatch):
    """The worker's order of events: compaction steps, a call is queued (seen at a pause
    between steps), the tick returns, the call is answered, later ticks finish compaction;
    the write the call made lands after the cut and survives a reopen."""
    from ostracon.runtime.browser import idle

    monkeypatch.setattr(idle, "COMPACT_STEP_DOCS", 50)
    h = new_host()
    records = _long_log(h, "during")
    events: list[str] = []
    queue: list[list] = []

    def pause() -> None:  # the worker's event loop runs: a message arrives at the 2nd pause
        events.append("pause")
        if events.count("pause") == 2:
            queue.append([11, "create", ["c", {"late": True}, None]])
            events.append("queued")

    h.pause = pause
    h.calls_waiting = lambda: bool(queue)
    call(h, "tick")
    events.append("tick returned")
    assert h.storage.load_snapshot() is None and h.storage.open_report().records == records
    out = h.run(queue)
    queue.clear()
    assert "error" not in out["responses"][0]
    late_id = FFI.back(out["responses"][0]["result"])
    events.append("answered")
    ticks = 0
    while h.storage.load_snapshot() is None:
        ticks += 1
        assert ticks < 100, "compaction never finished"
        call(h, "tick")
    events.append("compacted")
    assert events[:5] == ["pause", "pause", "queued", "tick returned", "answered"]
    assert events[-1] == "compacted" and events.count("pause") > 2
    snap_at = h.storage.load_snapshot()[1]
    assert h.storage.last_position() > snap_at and h.storage.open_report().records > 0
    call(h, "close")
    h2 = new_host()
    call(h2, "open", {"name": "during"})
    assert call(h2, "get", "c", late_id)["late"] is True
    assert call(h2, "count", "c") == idle.COMPACT_LOG_RECORDS + 11  # _long_log's and the late one


def test_a_tail_written_during_compaction_is_compacted_once_writes_stop(new_host, monkeypatch):
    """A compaction in the middle of a run of writes leaves the rest of the run in the log;
    the half rule alone would keep replaying it at every open (here it is under half the
    store). One compaction without the half rule follows each one under it, not more."""
    from ostracon.runtime.browser import idle

    monkeypatch.setattr(idle, "COMPACT_STEP_DOCS", 200)
    h = new_host()
    _long_log(h, "tail")
    for start in range(0, 2 * idle.COMPACT_LOG_RECORDS, 500):
        call(h, "createMany", "c", [{"j": j} for j in range(start, start + 500)])
    call(h, "flush")
    h.calls_waiting = lambda: True
    h.pause = lambda: None
    assert h.maybe_compact() and not h._compact_run.done
    cut = h._compact_run.cut
    tail = idle.COMPACT_LOG_RECORDS + 10
    for start in range(0, tail, 500):  # written between the steps, after the cut
        call(h, "createMany", "c", [{"k": k} for k in range(start, min(tail, start + 500))])
    call(h, "flush")
    assert 2 * tail < len(h.db.replica.order) - tail  # the tail alone is under the half rule
    h.calls_waiting = None
    call(h, "tick")  # finishes the run, then compacts the tail in the same idle stretch
    assert h._compact_run is None and h.storage.load_snapshot()[1] > cut
    assert h.storage.open_report().records == 0
    for start in range(0, tail, 500):  # a new stretch of the same size: the half rule again
        call(h, "createMany", "c", [{"m": m} for m in range(start, min(tail, start + 500))])
    call(h, "flush")
    call(h, "tick")
    assert h.storage.open_report().records >= tail


def test_writes_after_a_finished_compaction_are_compacted_once_when_idle(new_host):
    from ostracon.runtime.browser import idle

    h = new_host()
    _long_log(h, "after")
    for start in range(0, 2 * idle.COMPACT_LOG_RECORDS, 500):
        call(h, "createMany", "c", [{"j": j} for j in range(start, start + 500)])
    call(h, "flush")
    call(h, "tick")  # under the half rule
    first = h.storage.load_snapshot()[1]
    n = idle.COMPACT_LOG_RECORDS + 10
    for rounds in range(2):
        for start in range(0, n, 500):
            call(h, "createMany", "c", [{"k": k} for k in range(start, min(n, start + 500))])
        call(h, "flush")
        call(h, "tick")
        assert 2 * n < len(h.db.replica.order) - n  # under the half rule each time
        if rounds == 0:  # the first stretch after it is compacted, the second is not
            assert h.storage.load_snapshot()[1] > first and h.storage.open_report().records == 0
        else:
            assert h.storage.open_report().records >= n


def test_compaction_resumes_across_ticks_and_stops_with_the_database(new_host, monkeypatch):
    from ostracon.runtime.browser import idle

    monkeypatch.setattr(idle, "COMPACT_STEP_DOCS", 50)
    h = new_host()
    _long_log(h, "stop")
    h.calls_waiting = lambda: True  # a call waits after every step
    h.pause = lambda: None
    h.maybe_compact()
    run = h._compact_run
    assert run is not None and not run.done and run.steps == 1
    h.maybe_compact()
    assert h._compact_run is run and run.steps == 2
    call(h, "close")
    assert run.done and run.position is None
    h.maybe_compact()  # nothing open: nothing to do
    h2 = new_host()
    call(h2, "open", {"name": "stop"})
    assert h2.storage.load_snapshot() is None  # abandoned: nothing was written


class _Clock:
    """The idle floor's clock (ms), moved by the test only."""

    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


def _fake_clock(h: Host) -> _Clock:
    """Put the floor on a clock the test moves and count from now (the set-up's calls do not
    count)."""
    clock = h.clock_ms = _Clock()
    h._turn_taken()
    h.floor_steps = 0
    return clock


def _calls(h: Host, n: int, first_id: int = 100) -> None:
    out = h.run([[first_id + i, "count", ["c"]] for i in range(n)])
    assert all("error" not in r for r in out["responses"])


def test_calls_back_to_back_do_not_starve_compaction(new_host, monkeypatch):
    """A page that always has calls queued: the idle tick never gets a turn, the floor gives
    compaction one step per IDLE_FLOOR_CALLS calls until the snapshot is in."""
    from ostracon.runtime.browser import idle

    monkeypatch.setattr(idle, "COMPACT_STEP_DOCS", 50)
    h = new_host()
    records = _long_log(h, "starved")
    _fake_clock(h)          # never moves: only the number of calls counts
    h.pause = lambda: None
    h.calls_waiting = lambda: True
    call(h, "tick")
    assert h._compact_run is None and h.storage.open_report().records == records
    _calls(h, idle.IDLE_FLOOR_CALLS - 1)
    assert h.floor_steps == 0 and h._compact_run is None
    _calls(h, 1)
    run = h._compact_run
    assert h.floor_steps == 1 and run is not None and run.steps == 1
    turns = 1
    while not run.done:
        _calls(h, idle.IDLE_FLOOR_CALLS // 2)
        assert run.steps == turns and h.floor_steps == turns    # half the calls: no step
        _calls(h, idle.IDLE_FLOOR_CALLS // 2)
        turns += 1
        assert run.done or run.steps == turns                   # one step per floor turn
        assert turns < 100, "compaction never finished"
    assert h.floor_error is None and h.storage.load_snapshot() is not None
    assert h.storage.open_report().records == 0


def test_slow_calls_get_the_time_floor(new_host, monkeypatch):
    from ostracon.runtime.browser import idle

    monkeypatch.setattr(idle, "COMPACT_STEP_DOCS", 50)
    h = new_host()
    _long_log(h, "slow")
    clock = _fake_clock(h)
    h.pause = lambda: None
    h.calls_waiting = lambda: True
    _calls(h, 1)
    clock.ms += idle.IDLE_FLOOR_MS - 1
    _calls(h, 1)
    assert h.floor_steps == 0 and h._compact_run is None
    clock.ms += 1
    _calls(h, 1)
    assert h.floor_steps == 1 and h._compact_run.steps == 1
    clock.ms += idle.IDLE_FLOOR_MS - 1   # the floor counts from its own turn
    _calls(h, 1)
    assert h.floor_steps == 1 and h._compact_run.steps == 1


def test_an_idle_tick_resets_the_floor(new_host):
    from ostracon.runtime.browser import idle

    h = new_host()
    call(h, "open", {"name": "reset"})
    _fake_clock(h)
    _calls(h, idle.IDLE_FLOOR_CALLS - 1)
    call(h, "tick")                      # background work had its turn (nothing to do)
    _calls(h, idle.IDLE_FLOOR_CALLS - 1)  # the tick itself is no call
    assert h.floor_steps == 0
    _calls(h, 1)
    assert h.floor_steps == 1


def test_the_floor_steps_the_view_even_while_calls_wait(new_host):
    from ostracon.runtime.browser import idle

    h = new_host()
    call(h, "open", {"name": "viewfloor"})
    _fake_clock(h)
    h.calls_waiting = lambda: True
    model = _ViewModel(h.storage, 3 * idle.VIEW_STEP_DOCS)
    h.storage = model
    call(h, "tick")                      # quiet, but calls wait: postponed
    assert model.steps == []
    _calls(h, idle.IDLE_FLOOR_CALLS)
    assert model.steps == [idle.VIEW_STEP_DOCS]   # one step, not the whole backlog
    _calls(h, idle.IDLE_FLOOR_CALLS)
    assert model.steps == [idle.VIEW_STEP_DOCS] * 2
    h.storage = model.storage


def test_an_error_of_a_floor_step_is_kept_and_the_calls_are_answered(new_host):
    from ostracon.core.errors import StorageError
    from ostracon.runtime.browser import idle

    h = new_host()
    call(h, "open", {"name": "floorerr"})
    _fake_clock(h)

    def broken() -> bool:
        raise StorageError("disk full")

    h.catch_up_view = broken
    posted = []
    h.post_background = posted.append
    _calls(h, idle.IDLE_FLOOR_CALLS)     # asserts every call was answered
    assert isinstance(h.floor_error, StorageError) and h.floor_steps == 1
    last = {"where": "view", "error": {"name": "StorageError", "message": "disk full",
                                       "names": ["StorageError", "OstraconError", "Exception"]}}
    assert posted == [{"errors": 1, "last": last}] and call(h, "info")["background"] == posted[0]


def test_a_failed_step_of_an_idle_tick_is_posted_to_the_page_not_raised(new_host):
    from ostracon.core.errors import DiskFullError

    h = new_host()
    call(h, "open", {"name": "tickerr"})
    posted = []
    h.post_background = posted.append
    tries = []

    def broken() -> bool:
        tries.append(1)
        raise DiskFullError("quota")

    h.maybe_compact = broken
    for _ in range(2):                   # answered, not failed; retried at every turn
        assert not isinstance(call(h, "tick"), tuple)
    assert len(tries) == 2 and [p["errors"] for p in posted] == [1, 2]
    assert posted[-1]["last"]["where"] == "compaction" and posted[-1]["last"]["error"]["name"] == "DiskFullError"


def test_a_background_flush_that_fails_is_posted_and_keeps_its_batch(new_host):
    from ostracon.core.errors import StorageError

    h = new_host()
    call(h, "open", {"name": "flusherr", "sink_interval_ms": 0})
    posted = []
    h.post_background = posted.append
    real = h.storage.flush

    def refuse() -> None:
        raise StorageError("the disk said no")

    h.storage.flush = refuse
    doc_id = call(h, "create", "c", {"n": 1})
    call(h, "tick")                      # the time trigger (0 ms): the flush fails
    assert posted and posted[-1]["last"]["where"] == "flush"
    assert posted[-1]["last"]["error"]["name"] == "StorageError"
    assert call(h, "info")["background"]["errors"] >= 1
    h.storage.flush = real
    assert not isinstance(call(h, "flush"), tuple)   # the batch was kept: now durable
    h.close()
    h2 = new_host()
    call(h2, "open", {"name": "flusherr"})
    assert call(h2, "get", "c", doc_id)["n"] == 1
    fresh = call(h2, "info")["background"]
    assert fresh["errors"] == 0 and fresh["last"] is JS_NULL   # counted per open


def test_a_store_opened_from_an_old_format_snapshot_is_rewritten_at_the_first_idle_tick(new_host):
    """Opening replays an old-format snapshot's blocks (core/snapshot.py); the idle work
    rewrites it once, with nothing new and a short log, so the next open loads its rows."""
    from ostracon.core import snapshot
    from ostracon.core.replica import Replica
    from test_snapshot import _as_format_4

    def snapshot_format(h: Host) -> int:
        data = h.storage.load_snapshot()[0]
        return snapshot.load(Replica(h.db.replica.actor, require_signatures=False), data)

    h = new_host()
    call(h, "open", {"name": "old"})
    call(h, "createMany", "c", [{"i": i} for i in range(20)])
    call(h, "flush")
    position = h.db.compact()
    h.storage.write_snapshot(_as_format_4(h.storage.load_snapshot()[0]), position)
    state = h.db.state_hash()
    call(h, "close")
    h2 = new_host()
    call(h2, "open", {"name": "old"})
    assert h2.db.snapshot_outdated and snapshot_format(h2) == 4
    call(h2, "tick")
    assert not h2.db.snapshot_outdated and snapshot_format(h2) == snapshot.SNAPSHOT_FORMAT
    assert h2.maybe_compact() is False  # rewritten once: nothing more to do
    call(h2, "close")
    h3 = new_host()
    call(h3, "open", {"name": "old"})
    assert not h3.db.snapshot_outdated and h3.db.state_hash() == state


def test_recording_a_background_failure_never_raises_even_for_an_unprintable_error(new_host):
    # The page is told of every failure, and the work that failed (a flush in the sink, a
    # step in a tick or the floor) is never broken by the telling.
    h = new_host()
    call(h, "open", {"name": "unprintable"})
    posted = []
    h.post_background = posted.append

    class Odd(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for this one")

    h.background_failed("view", Odd())
    assert [p["errors"] for p in posted] == [1]
    assert posted[0]["last"]["where"] == "view" and posted[0]["last"]["error"]["name"] == "Odd"
    assert call(h, "info")["background"] == posted[0]
