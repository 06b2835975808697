"""The native driver and the durability contract (docs/STORAGE.md): the time trigger fires
while the program idles, interpreter exit flushes and closes, a database never closed is
named in a ResourceWarning, and a SIGKILL inside the interval loses at most the writes
since the last durable flush."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import warnings

import pytest

import ostracon
from ostracon.cli import verify_database
from polling import read_line, wait_until

CHILD = os.path.join(os.path.dirname(__file__), "lifecycle_child.py")
N = 150


def spawn(path: str, mode: str, n: int = N) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(os.path.dirname(__file__), "..", "py")] + sys.path))
    return subprocess.Popen([sys.executable, "-W", "error::ResourceWarning", CHILD, path, mode, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def kill(child: subprocess.Popen) -> bytes:
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
    return err


def reopen_ids(path: str) -> list[str]:
    db = ostracon.open(path, read_only=True)
    try:
        assert verify_database(db) == []
        col = db.collection("docs")
        return sorted(d["_id"] for d in col.iter_docs())
    finally:
        db.close()


def test_idle_past_the_interval_then_sigkill_keeps_everything(tmp_path):
    path = str(tmp_path / "db")
    child = spawn(path, "idle")
    try:
        assert read_line(child.stdout, "durable") == "durable"
    finally:
        kill(child)
    assert reopen_ids(path) == [f"d{i:05d}" for i in range(N)]


def test_normal_exit_without_close_keeps_everything(tmp_path):
    path = str(tmp_path / "db")
    child = spawn(path, "exit")
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()[-2000:]
    assert b"Warning" not in err and b"Traceback" not in err, err.decode()[-2000:]
    assert reopen_ids(path) == [f"d{i:05d}" for i in range(N)]


def test_sigkill_inside_the_interval_loses_only_the_writes_after_the_last_flush(tmp_path):
    path = str(tmp_path / "db")
    child = spawn(path, "kill")
    try:
        assert read_line(child.stdout, "ready") == "ready"
    finally:
        kill(child)
    ids = reopen_ids(path)
    # Everything up to the flush survives; of the 30 writes after it, a prefix (in write
    # order) may survive, never a later write without an earlier one.
    assert ids[:N] == [f"d{i:05d}" for i in range(N)]
    assert ids == [f"d{i:05d}" for i in range(len(ids))] and len(ids) <= N + 30


def test_the_driver_fires_the_time_trigger_while_idle(tmp_path):
    db = ostracon.open(tmp_path / "db", sink_interval_ms=50)
    try:
        assert db.sink_status["driver"] is True
        col = db.collection("c")
        for i in range(3):
            col.create({"i": i})
        wait_until(lambda: db.sink_status["durable_total"] == 3, "the idle flush")
        assert db.pending_writes == 0
    finally:
        db.close()


def test_the_100th_write_leaves_sealing_and_fsync_to_the_driver(tmp_path):
    db = ostracon.open(tmp_path / "db", sink_interval_ms=60_000)
    try:
        col = db.collection("c")
        for i in range(100):
            col.create({"i": i})
        # The writer returned before any flush of its own: the driver does it.
        wait_until(lambda: db.sink_status["flushes"] >= 1, "the driver's size-trigger flush")
        assert db.sink_status["durable_total"] == 100
    finally:
        db.close()


def test_an_injected_clock_means_no_driver_and_tick_still_works():
    t = [1_000]
    db = ostracon.open(clock=lambda: t[0], sink_interval_ms=100)
    assert db.sink_status["driver"] is False
    db.collection("c").create({"a": 1})
    assert db.pending_writes == 1
    t[0] += 100
    db.tick()
    assert db.pending_writes == 0
    db.close()


def test_a_database_never_closed_is_named_in_a_resource_warning(tmp_path):
    path = tmp_path / "forgotten"
    db = ostracon.open(path)
    db.collection("c").create({"a": 1}, id="x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del db
        gc.collect()
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any("never closed" in m and "forgotten" in m for m in msgs), msgs
    db = ostracon.open(path)   # and it was closed: the write is there, the lock is free
    assert db.collection("c").get("x")["a"] == 1
    db.close()


def test_close_is_idempotent_and_later_calls_raise(tmp_path):
    db = ostracon.open(tmp_path / "db")
    col = db.collection("c")
    col.create({"a": 1})
    db.close()
    db.close()
    with pytest.raises(ostracon.ClosedError):
        col.create({"a": 2})
    with pytest.raises(ostracon.ClosedError):
        db.flush()


def test_where_threads_cannot_start_there_is_no_driver_and_tick_drives(monkeypatch):
    import threading

    def refuse(self):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(threading.Thread, "start", refuse)    # as in Pyodide
    t = [1_000]
    db = ostracon.open(clock=lambda: t[0], driver=True, sink_interval_ms=100)
    assert db.sink_status["driver"] is False
    db.collection("c").create({"a": 1})
    assert db.pending_writes == 1
    t[0] += 100
    db.tick()                                                  # the host's timer
    assert db.pending_writes == 0
    db.close()


def test_the_driver_commits_an_idle_text_burst_and_makes_it_durable(tmp_path):
    path = tmp_path / "db"
    db = ostracon.open(path, sink_interval_ms=50)
    notes = db.collection("notes")
    doc_id = notes.create({"body": ostracon.Text("milk")})
    notes.text(doc_id, "body").insert(4, ", eggs")        # an open burst: not a block yet
    wait_until(lambda: db.sink_status["durable_total"] == 2, "the burst committed and flushed")
    db.close()
    db = ostracon.open(path)
    assert db.collection("notes").get(doc_id)["body"] == "milk, eggs"
    db.close()
