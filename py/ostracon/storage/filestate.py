"""The state of a FileStorage's view of its directory, declared once for FileStorage and the
mixins that open it (recovery.py) and follow another writer (tail.py).

Declarations only: FileStorage.__init__ sets every attribute, and FileStorage (RecoveryMixin
for `_open`) defines every helper named here; the mixins inherit this class so that mypy
checks what they read and write against one set of types.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .fslayer import OsFileLayer, OsLock, OsWriteHandle


class FileStorageState:
    """Attributes and helpers of FileStorage that its mixins use (docs/STORAGE.md)."""

    _fs: OsFileLayer                         # every disk access goes through it
    _dir: str
    read_only: bool                          # an observer: never takes the writer's lock
    _repair: bool
    _sync: bool                              # fsync (durability is not "none")
    _max_record: int
    _mutex: threading.RLock                  # serialises writers and changes of the view
    _lock: OsLock | None
    _writer: OsWriteHandle | None
    _segs: list[int]                         # first position of each segment, ascending
    _seg_end: int                            # valid length of the active (last) segment
    _durable_last: int                       # last position written to the log
    _last: int                               # last position appended (incl. queued)
    _meta: dict[str, bytes]
    _floor: int                              # records <= floor were compacted away
    _snaps: list[tuple[int, int]]            # (seq, position) ascending by seq
    _snap_cache: tuple[bytes, int] | None
    _truncated: int
    _quarantined: list[str]
    _notes: list[str]
    _path: Callable[[str], str]
    _io: Callable[..., Any]
    _sync_dir: Callable[..., None]
    _new_segment: Callable[[int, bytes], None]
    _check_open: Callable[[], None]
    _open: Callable[[], None]                # RecoveryMixin: (re)load the view from the directory
