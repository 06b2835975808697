"""Scenario 1 of the integrity audit with real processes: a member whose clock says the
last legal millisecond (or year 9999) syncs through a REAL relay process; every other
device keeps writing, its clock and commit times stay its own, and log/history print.

The relay process helper is shared with tests/test_sync_process.py.
"""

from __future__ import annotations

import asyncio

import pytest

import ostracon
from ostracon.cli import main
from ostracon.core.clock import MAX_WALL_MS, wall_ms
from ostracon.crypto import DeterministicRandom
from relay_process import sqlite_relay
from test_sync_process import FAST, SEED, _space, _until  # noqa: F401

NOW = 1_700_000_000_000


@pytest.fixture
def relay(tmp_path):
    r = sqlite_relay(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.kill()


@pytest.mark.parametrize("evil_clock", [MAX_WALL_MS, 253402300799999])
def test_far_future_member_cannot_stop_writers_through_a_real_relay(relay, tmp_path, evil_clock, capsys):
    from ostracon.sync.native import start_sync
    space = _space()
    t = [NOW]

    def honest_clock():
        t[0] += 1
        return t[0]

    async def run():
        evil = ostracon.open(str(tmp_path / "evil"), clock=lambda: evil_clock,
                             random_bytes=DeterministicRandom(f"{SEED}/evil"))
        evil.collection("notes").create({"title": "from the future"}, id="n1")
        evil.flush()
        a = ostracon.open(str(tmp_path / "a"), clock=honest_clock, random_bytes=DeterministicRandom(f"{SEED}/a"))
        b = ostracon.open(str(tmp_path / "b"), clock=honest_clock, random_bytes=DeterministicRandom(f"{SEED}/b"))
        handles = [await start_sync(db, relay.url, space, **FAST) for db in (evil, a, b)]
        await _until(lambda: a.replica.held_count == 1 and b.replica.held_count == 1,
                     "the far-future block to reach both honest devices")
        for k in range(5):
            a.collection("notes").create({"k": k}, id=f"a{k}")
        a.flush()
        handles[1].notify_local_change()
        await _until(lambda: b.collection("notes").count() == 5, "honest writes to arrive")
        for h in handles:
            await h.stop()
        for db in (a, b):
            assert db.collection("notes").get("n1") is None
            assert wall_ms(db.replica.clock.last) < NOW + 10**7  # never adopted the evil stamp
            db.close()
        evil.close()

    asyncio.run(run())
    a = ostracon.open(str(tmp_path / "a"), clock=honest_clock)  # reopen: still writable
    a.collection("notes").create({"after": "reopen"}, id="z")
    a.close()
    for path in ("evil", "a"):
        assert main(["log", str(tmp_path / path)]) == 0
    assert main(["history", str(tmp_path / "evil"), "notes", "n1"]) == 0
    assert "Z" in capsys.readouterr().out
