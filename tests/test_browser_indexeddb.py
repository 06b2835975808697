"""ostracon.runtime.browser.indexeddb natively: what the adapter makes of a database the bridge
has read (the reads and writes themselves run under Pyodide: e2e/runtime_checks_storage.py,
run by `make test-node` and e2e/test_browser.py)."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest

from ostracon.core.errors import StorageError
from ostracon.runtime.browser.indexeddb import IndexedDBStorage


def _loaded(snapshot=None, positions=(), records=()):
    """What bridge.js idbLoad resolves to (bytes stand in for Uint8Arrays)."""
    return SimpleNamespace(positions=list(positions), records=list(records), snapshot=snapshot,
                           metaKeys=[], metaValues=[], viewCount=0)


def test_the_inflated_snapshot_is_given_once_and_only_for_the_stored_bytes():
    plain = b"snapshot" * 100
    data = zlib.compress(plain)
    s = IndexedDBStorage("x", None, _loaded(SimpleNamespace(data=data, position=3, plain=plain)))
    stored, position = s.load_snapshot()
    assert stored == data and position == 3
    assert s.take_inflated_snapshot(stored) == plain
    assert s.take_inflated_snapshot(stored) is None  # given once: the engine loads it once
    other = IndexedDBStorage("x", None, _loaded(SimpleNamespace(data=data, position=3, plain=plain)))
    assert other.take_inflated_snapshot(bytes(bytearray(data))) is None  # equal bytes, not the stored ones


def test_a_snapshot_the_bridge_did_not_inflate_has_no_inflated_form():
    s = IndexedDBStorage("x", None, _loaded(SimpleNamespace(data=b"S1", position=1, plain=None)))
    assert s.take_inflated_snapshot(s.load_snapshot()[0]) is None
    assert IndexedDBStorage("y", None, _loaded()).take_inflated_snapshot(b"") is None


def test_records_out_of_order_refuse_the_open():
    with pytest.raises(StorageError, match="out of order"):
        IndexedDBStorage("x", None, _loaded(positions=[2, 1], records=[b"a", b"b"]))
