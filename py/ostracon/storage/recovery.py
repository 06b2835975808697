"""Opening a FileStorage directory: snapshot checks, log recovery, torn tails, repair.

A mixin of FileStorage (kept apart so each file stays readable); the rules are in
docs/STORAGE.md, "Recovery (open)". Everything here runs inside FileStorage.__init__.
"""

from __future__ import annotations

import os

from ..core.errors import (
    CorruptLogError,
    CorruptSnapshotError,
    LockedError,
    MissingSnapshotError,
    StorageUnavailableError,
)
from . import logformat as lf
from .filestate import FileStorageState
from .fslayer import map_oserror

LOCK_NAME = "LOCK"
# Files a database directory holds besides its segments and snapshots (the identity is kept here).
KNOWN_OTHER_FILES = (LOCK_NAME, "identity.key")


def _snapshot_tmp(name: str) -> bool:
    """A snapshot being written (`snap-<seq>.snap.tmp`); only these are removed at open."""
    return name.endswith(".tmp") and lf.parse_snapshot_name(name[:-4]) is not None


class RecoveryMixin(FileStorageState):
    # ---- open and recovery ---------------------------------------------------------------

    def _refuse_foreign_directory(self, names: list[str]) -> None:
        """Raise StorageUnavailableError when `names` (an existing directory's entries) hold
        files but none of a database: opening for writing would add a lock, an identity and a
        log to somebody's folder (a mistyped path), as sqlite3 refuses a file that is not a
        database. An empty directory, or one with any database file, is fine."""
        ours = [n for n in names if n in KNOWN_OTHER_FILES or n.startswith("quarantine-") or _snapshot_tmp(n)
                or lf.parse_segment_name(n) is not None or lf.parse_snapshot_name(n) is not None]
        if names and not ours:
            shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            raise StorageUnavailableError(f"cannot open {self._dir}: it holds files that are not an Ostracon "
                                          f"database ({shown}); open an empty or new directory")

    def _open(self) -> None:
        fs, d = self._fs, self._dir
        parent = os.path.dirname(os.path.abspath(d))
        try:
            if not fs.isdir(d):
                if fs.exists(d):
                    raise StorageUnavailableError(f"cannot open {d}: it exists and is not a directory")
                if not fs.isdir(parent):
                    raise StorageUnavailableError(f"cannot open {d}: parent directory {parent} does not exist")
                if self.read_only:
                    raise StorageUnavailableError(f"cannot open {d} read-only: it does not exist")
                fs.mkdir(d)
                self._sync_dir(parent)
            elif not self.read_only:
                self._refuse_foreign_directory(fs.listdir(d))
            if not self.read_only:
                if not fs.writable(d):
                    raise StorageUnavailableError(f"cannot open {d} for writing: directory is not writable "
                                                  "(permission denied); use read_only=True to read it")
                try:
                    self._lock = fs.lock(self._path(LOCK_NAME))
                except BlockingIOError:
                    raise LockedError(f"{d} is already open for writing by another process (or another "
                                      f"FileStorage in this one): lock {self._path(LOCK_NAME)} is held; "
                                      "open with read_only=True to read it") from None
            names = fs.listdir(d)
        except OSError as exc:
            raise map_oserror(exc, "open", d) from exc
        segs, snaps = [], []
        for name in sorted(names):
            if _snapshot_tmp(name):
                if not self.read_only:  # a crash during write_snapshot; never renamed, never acknowledged
                    self._io(fs.remove, "remove", self._path(name), self._path(name))
                    self._notes.append(f"removed unfinished temporary file {name}")
            elif (first := lf.parse_segment_name(name)) is not None:
                segs.append(first)
            elif (seq := lf.parse_snapshot_name(name)) is not None:
                snaps.append(seq)
            elif name not in KNOWN_OTHER_FILES and not name.startswith("quarantine-"):
                self._notes.append(f"ignored unknown file {name}")
        self._snaps = [(seq, self._snapshot_position(seq)) for seq in snaps]
        self._snap_cache = self._load_valid_snapshot()
        segs = self._recover_segments(segs)
        snap_pos = self._snap_cache[1] if self._snap_cache else 0
        if not segs:
            if snap_pos and not self._repair:
                raise CorruptLogError(f"{d} has a snapshot covering 1..{snap_pos} but no log segment; "
                                      "open with repair=True to continue from the snapshot")
            self._floor = snap_pos
            self._durable_last = self._last = snap_pos
            if not self.read_only:
                self._new_segment(snap_pos + 1, b"")
            return
        if segs[0] - 1 > max(self._floor, snap_pos):
            if not self._repair:
                raise CorruptLogError(f"records {self._floor + 1}..{segs[0] - 1} are missing from {d}: the "
                                      "oldest segment starts later and no snapshot covers them",
                                      segment=lf.segment_name(segs[0]), offset=0)
            self._notes.append(f"records {self._floor + 1}..{segs[0] - 1} were missing (repair)")
        if self._floor > snap_pos:
            # Compaction dropped records 1..floor because a snapshot covered them; that
            # snapshot is gone. Opening would show a partial database and the device would
            # reuse its own sequence numbers, so refuse (repair: open what is left).
            missing = (f"{d} records a compaction up to position {self._floor} but no snapshot covering it "
                       f"exists (newest valid snapshot covers {snap_pos}): documents written before "
                       "it are missing")
            if not self._repair:
                raise MissingSnapshotError(missing + "; restore the snapshot file, or open with repair=True "
                                           "and sync to pull the lost history back from peers",
                                           segment=lf.segment_name(segs[0]), offset=0)
            self._notes.append(missing + " (repair: opened without them)")
        self._floor = max(self._floor, segs[0] - 1)
        while self._snap_cache and self._snap_cache[1] > self._last:
            if not self._repair:
                raise CorruptLogError(f"the log in {d} ends at position {self._last} but the newest snapshot "
                                      f"covers up to {self._snap_cache[1]}: acknowledged records are missing; "
                                      "open with repair=True to use the valid prefix")
            self._quarantine_snapshot(self._snaps[-1][0], "it is newer than the repaired log")
            self._snap_cache = self._load_valid_snapshot()
        if not self.read_only:
            path = self._path(lf.segment_name(segs[-1]))
            self._writer = self._io(lambda: self._fs.open_write(path), "open", path)

    def _snapshot_position(self, seq: int) -> int:
        path = self._path(lf.snapshot_name(seq))
        try:
            handle = self._fs.open_read(path)
            try:
                hdr = lf.decode_snapshot_header(handle.pread(0, lf.SNAP_HEADER_SIZE), handle.size())
            finally:
                handle.close()
        except OSError as exc:
            raise map_oserror(exc, "read snapshot", path) from exc
        return hdr[0] if hdr else -1   # -1: malformed; found out for real when it is loaded

    def _read_all(self, name: str) -> bytes:
        path = self._path(name)
        try:
            handle = self._fs.open_read(path)
            try:
                size = handle.size()
                return handle.pread(0, size) if size else b""
            finally:
                handle.close()
        except OSError as exc:
            raise map_oserror(exc, "read", path) from exc

    def _load_valid_snapshot(self) -> tuple[bytes, int] | None:
        while self._snaps:
            seq = self._snaps[-1][0]
            name = lf.snapshot_name(seq)
            decoded = lf.decode_snapshot(self._read_all(name))
            if decoded is not None:
                return decoded
            if not self._repair:
                raise CorruptSnapshotError(f"snapshot {self._path(name)} is malformed or fails its checksum; "
                                           "open with repair=True to set it aside and use an older one")
            self._quarantine_snapshot(seq, "it is malformed")
        return None

    def _quarantine_snapshot(self, seq: int, why: str) -> None:
        name = lf.snapshot_name(seq)
        target = self._quarantine_name(name[:-5])
        self._io(self._fs.rename, "quarantine", self._path(name), self._path(name), self._path(target))
        self._sync_dir()
        self._snaps = [s for s in self._snaps if s[0] != seq]
        self._quarantined.append(target)
        self._notes.append(f"moved snapshot {name} to {target}: {why}")

    def _quarantine_name(self, stem: str) -> str:
        existing = set(self._io(self._fs.listdir, "list", self._dir, self._dir))
        name, n = f"quarantine-{stem}.bin", 1
        while name in existing:
            name, n = f"quarantine-{stem}-{n}.bin", n + 1
        return name

    def _recover_segments(self, segs: list[int]) -> list[int]:
        """Check the segments; truncate a torn tail; raise (or, with repair, quarantine) on
        corruption. Only the last segment is scanned in full unless repair=True: older ones
        were complete and synced before the next one was created, and records() verifies
        every record it reads anyway."""
        i = 0
        while i < len(segs) - 1:
            name = lf.segment_name(segs[i])
            if self._repair:
                res = lf.scan_segment(self._read_all(name), segs[i], self._max_record)
                if res.damage is not None or res.last != segs[i + 1] - 1:
                    for later in segs[i + 1:]:
                        later_name = lf.segment_name(later)
                        target = self._quarantine_name(later_name[:-4])
                        self._io(self._fs.rename, "quarantine", self._path(later_name),
                                 self._path(later_name), self._path(target))
                        self._quarantined.append(target)
                        self._notes.append(f"moved segment {later_name} (after damage) to {target}")
                    self._sync_dir()
                    del segs[i + 1:]
                    break
            else:
                head = self._read_all(name)[:lf.SEG_HEADER_SIZE]
                if not lf.segment_header_ok(head, segs[i]):
                    raise CorruptLogError(f"segment {self._path(name)} has a damaged header",
                                          segment=name, offset=0)
            i += 1
        while segs:
            name = lf.segment_name(segs[-1])
            buf = self._read_all(name)
            res = lf.scan_segment(buf, segs[-1], self._max_record)
            whole = res.floor is None  # not even the checkpoint group survived: drop the file
            if res.damage is not None or whole:
                if res.corrupt and not self._repair:
                    raise CorruptLogError(
                        f"corrupt record in {self._path(name)} at offset {res.damage}: valid records follow "
                        "it, so it is not a torn write; open with repair=True to quarantine the damaged "
                        "part and keep the valid prefix", segment=name, offset=res.damage)
                cut = 0 if whole else res.end
                if self._repair and res.damage is not None:  # keep the bytes: they may matter
                    self._quarantine_bytes(name, cut, buf[cut:])
                else:
                    self._truncated += len(buf) - cut
                    self._notes.append(f"torn tail: cut {len(buf) - cut} bytes from {name} at offset {cut}")
                if not self.read_only:
                    self._cut_segment(name, cut, whole)
            if whole:
                segs.pop()
                continue
            self._segs = segs
            self._seg_end, self._durable_last = res.end, res.last
            self._last = res.last
            self._meta, self._floor = res.meta, res.floor or 0
            return segs
        return segs

    def _quarantine_bytes(self, name: str, offset: int, data: bytes) -> None:
        target = self._quarantine_name(f"{name[:-4]}-{offset}")
        path = self._path(target)
        try:
            handle = self._fs.open_write(path, create=True, exclusive=True)
            try:
                handle.write(data)
                if self._sync:
                    handle.fsync()
            finally:
                handle.close()
        except OSError as exc:
            raise map_oserror(exc, "write quarantine file", path) from exc
        self._sync_dir()
        self._quarantined.append(target)
        self._notes.append(f"repair: moved {len(data)} damaged bytes of {name} from offset {offset} to {target}")

    def _cut_segment(self, name: str, size: int, whole: bool) -> None:
        path = self._path(name)
        if whole:
            self._io(self._fs.remove, "remove", path, path)
            self._sync_dir()
            return
        try:
            handle = self._fs.open_write(path)
            try:
                handle.truncate(size)
                if self._sync:
                    handle.fsync()
            finally:
                handle.close()
        except OSError as exc:
            raise map_oserror(exc, "truncate", path) from exc
