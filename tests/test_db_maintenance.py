"""Verification of a whole database (db/maintenance.py `verify`); compaction has its own
module (test_db_compaction.py)."""

import pytest

import ostracon
from ostracon import ValidationError


@pytest.mark.parametrize("progress", [5, "x", [print]])
def test_verify_refuses_a_progress_that_is_not_callable(db, progress):
    with pytest.raises(ValidationError, match="progress"):
        db.verify(progress=progress)


def test_verify_before_a_flush_reports_no_problem_and_still_finds_forgeries(tmp_path):
    # Own writes not yet flushed wait for the next batch's seal: honest work, not damage.
    db = ostracon.open(tmp_path / "db", sink_interval_ms=3_600_000)
    db.collection("t").create({"a": 1}, id="x")
    assert db.pending_writes == 1
    assert db.verify() == []
    db.flush()
    assert db.verify() == []
    db.close()
