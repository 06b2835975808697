"""The worker's idle tick (ostracon.runtime.browser.idle), natively through the host's RPC
entry: background work runs in steps and gives way to calls waiting in the worker or later
in the same RPC batch (the worker's queue is a callback here)."""

from __future__ import annotations

import pytest

from ostracon.runtime.browser.host import Host
from test_browser_host import FFI, call, make_host  # noqa: F401  (fixture)


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
