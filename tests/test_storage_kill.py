"""Real crashes: a child process appends and flushes, reporting each flushed position on a
pipe; the parent SIGKILLs it at a random moment, then checks that no acknowledged record
is lost, that the log is a valid prefix of what was written, and that the snapshot plus
the replayed tail reproduce the state hash the child computed. All trials share one
directory, so each recovery is also the starting point of the next writer."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from ostracon.storage.file import FileStorage
from storage_kill_child import record, state_hash

TRIALS = int(os.environ.get("OSTRACON_KILL_TRIALS", "50"))
SEED = int(os.environ.get("OSTRACON_KILL_SEED", "424242"))
CHILD = os.path.join(os.path.dirname(__file__), "storage_kill_child.py")


def check_store(path: str, acked: int, where: str) -> int:
    s = FileStorage(path)
    try:
        last = s.last_position()
        assert last >= acked, f"{where}: acknowledged position {acked} lost (log ends at {last})"
        snap = s.load_snapshot()
        h, pos = (snap[0], snap[1]) if snap else (b"", 0)
        if snap:  # the snapshot is the state hash of exactly records 1..pos
            expect = b""
            for p in range(1, pos + 1):
                expect = state_hash(expect, record(p))
            assert h == expect, f"{where}: snapshot at {pos} does not match a replay of records 1..{pos}"
        for p, rec in s.records(pos):
            assert p == pos + 1, f"{where}: gap or reorder at position {p} (expected {pos + 1})"
            assert rec == record(p), f"{where}: record {p} damaged"
            h = state_hash(h, rec)
            pos = p
        assert pos == last, f"{where}: records end at {pos}, last_position says {last}"
        return last
    finally:
        s.close()


def test_sigkill_loses_no_acknowledged_write(tmp_path):
    rng = random.Random(SEED)
    path = str(tmp_path / "db")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(os.path.dirname(__file__), "..", "py")] + sys.path))
    acked = 0
    killed_mid_run = 0
    for trial in range(TRIALS):
        where = f"seed {SEED} trial {trial}"
        durability = rng.choice(["flush", "always", "none"])
        child = subprocess.Popen([sys.executable, CHILD, path, str(rng.getrandbits(32)), durability],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            for _ in range(rng.randint(0, 40)):
                line = child.stdout.readline()
                if not line:
                    break
                acked = max(acked, int(line))
            time.sleep(rng.random() * 0.003)  # land the kill anywhere in the write cycle
            child.send_signal(signal.SIGKILL)
            rest, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL, f"{where}: child died on its own: {err.decode()[-2000:]}"
        for line in rest.split():
            acked = max(acked, int(line))  # printed before the kill: acknowledged too
        last = check_store(path, acked, where)
        killed_mid_run += last > 0
        acked = last  # what survived is the new baseline, acknowledged or not
    assert killed_mid_run > TRIALS // 2
