"""storage/filestate.py: the one declaration of FileStorage's state that its open (recovery)
and follow (tail) mixins share must describe what FileStorage really holds, for a writable
and a read-only open."""

from __future__ import annotations

import pytest

from ostracon.storage.file import FileStorage
from ostracon.storage.filestate import FileStorageState
from ostracon.storage.recovery import RecoveryMixin
from ostracon.storage.tail import TailMixin


def test_both_mixins_take_their_state_from_the_one_declaration() -> None:
    assert issubclass(RecoveryMixin, FileStorageState)
    assert issubclass(TailMixin, FileStorageState)
    for mixin in (RecoveryMixin, TailMixin):
        # No second declaration of a shared name in a mixin.
        assert not set(vars(mixin).get("__annotations__", {})) & set(FileStorageState.__annotations__)


@pytest.mark.parametrize("read_only", [False, True])
def test_an_open_store_holds_every_declared_attribute(tmp_path, read_only: bool) -> None:
    FileStorage(tmp_path).close()  # a read-only open needs an existing store
    store = FileStorage(tmp_path, read_only=read_only)
    try:
        for name in FileStorageState.__annotations__:
            assert hasattr(store, name), name
        assert store.read_only is read_only
        assert isinstance(store._segs, list) and isinstance(store._meta, dict)
        assert callable(store._path) and store._path("x").endswith("x")
    finally:
        store.close()
