"""An in-memory file layer for FileStorage tests (same methods as storage/fslayer.OsFileLayer).

It models what a machine crash does to un-synced data, after SQLite's crash tests: every
file keeps the content it had at its last fsync plus the list of writes/truncates since;
directory entries keep their state at the last directory fsync plus the operations since.
`crash(rng)` returns the disk as a rebooted machine could find it: synced data intact, each
un-synced write kept, dropped or garbled sector by sector, each un-synced directory change
kept or dropped. `crash_at=N` makes the N-th mutating call raise Crash (a BaseException,
so no `except Exception/OSError` in the code under test can swallow it).

It also injects failures: `capacity` (ENOSPC, with a partial write first, like a real
nearly-full disk), `readonly_dirs` (EACCES), `fail_fsync_at` (EIO on the N-th fsync).
"""

from __future__ import annotations

import errno
import posixpath
import random


class Crash(BaseException):
    """The simulated machine lost power."""


class Inode:
    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)      # what reads see now
        self.durable = bytearray(data)   # what survives a crash for sure
        self.pending: list[tuple] = []   # ("write", offset, bytes) / ("truncate", size) since fsync


class FakeFS:
    def __init__(self, *, crash_at: int | None = None, capacity: int | None = None,
                 fail_fsync_at: int | None = None, dirs=("/",)) -> None:
        self.dirs = set(dirs)
        self.entries: dict[str, Inode] = {}
        self.durable_entries: dict[str, Inode] = {}
        self.dir_ops: list[tuple] = []
        self.locks: set[str] = set()
        self.readonly_dirs: set[str] = set()
        self.crash_at = crash_at
        self.capacity = capacity
        self.fail_fsync_at = fail_fsync_at
        self.ops = 0
        self.fsyncs = 0
        self.crashed = False

    # --- fault machinery ---------------------------------------------------------------
    def _tick(self) -> None:
        if self.crashed:
            raise Crash("machine is down")
        self.ops += 1
        if self.crash_at is not None and self.ops >= self.crash_at:
            self.crashed = True
            raise Crash(f"crash at mutating call {self.ops}")

    def _used(self) -> int:
        return sum(len(i.data) for i in set(self.entries.values()))

    def _check_dir_writable(self, path: str) -> None:
        if posixpath.dirname(path) in self.readonly_dirs:
            raise PermissionError(errno.EACCES, "Permission denied", path)

    def crash(self, rng: random.Random, sector: int = 64) -> FakeFS:
        """The disk after a power loss now (this object is left alone)."""
        entries = dict(self.durable_entries)
        for op in self.dir_ops:
            if rng.random() < 0.5:
                continue  # this directory change never reached the disk
            if op[0] == "link":
                entries[op[1]] = op[2]
            elif op[0] == "unlink":
                entries.pop(op[1], None)
            elif op[0] == "rename" and op[1] in entries:
                entries[op[2]] = entries.pop(op[1])
        new = FakeFS(dirs=self.dirs)
        new.readonly_dirs = set(self.readonly_dirs)
        images: dict[int, Inode] = {}
        for path, inode in entries.items():
            if id(inode) not in images:
                images[id(inode)] = Inode(self._survivor(inode, rng, sector))
            new.entries[path] = images[id(inode)]
        new.durable_entries = dict(new.entries)
        return new

    @staticmethod
    def _survivor(inode: Inode, rng: random.Random, sector: int) -> bytes:
        content = bytearray(inode.durable)
        for op in inode.pending:
            if op[0] == "truncate":
                if rng.random() < 0.5:
                    del content[op[1]:]
                    content.extend(bytes(max(0, op[1] - len(content))))
                continue
            _, off, data = op
            for i in range(0, len(data), sector):
                chunk = data[i:i + sector]
                fate = rng.random()
                if fate < 0.25:
                    continue  # dropped
                if fate < 0.45:
                    chunk = bytes(rng.getrandbits(8) for _ in chunk)  # garbled
                at = off + i
                if len(content) < at:
                    content.extend(bytes(at - len(content)))  # a hole reads as zeros
                content[at:at + len(chunk)] = chunk
        return bytes(content)

    def sync_all(self) -> None:
        """Make everything durable (e.g. to build a fixture before a damage test)."""
        for inode in self.entries.values():
            inode.durable = bytearray(inode.data)
            inode.pending = []
        self.durable_entries = dict(self.entries)
        self.dir_ops = []

    # --- the file-layer interface ---------------------------------------------------------
    def exists(self, path: str) -> bool:
        return path in self.dirs or path in self.entries

    def isdir(self, path: str) -> bool:
        return path in self.dirs

    def mkdir(self, path: str) -> None:
        self._tick()
        self._check_dir_writable(path)
        if self.exists(path):
            raise FileExistsError(errno.EEXIST, "File exists", path)
        if posixpath.dirname(path) not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.dirs.add(path)

    def writable(self, path: str) -> bool:
        return path not in self.readonly_dirs

    def listdir(self, path: str) -> list[str]:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return [posixpath.basename(p) for p in self.entries if posixpath.dirname(p) == path]

    def _inode(self, path: str) -> Inode:
        if self.crashed:
            raise Crash("machine is down")
        try:
            return self.entries[path]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path) from None

    def size(self, path: str) -> int:
        return len(self._inode(path).data)

    def read_file(self, path: str) -> bytes:
        return bytes(self._inode(path).data)

    def write_file(self, path: str, data: bytes) -> None:
        """Replace a file's content durably (test set-up and damage injection)."""
        inode = self.entries.get(path) or Inode()
        inode.data = bytearray(data)
        self.entries[path] = self.durable_entries[path] = inode
        inode.durable, inode.pending = bytearray(data), []

    def open_read(self, path: str) -> FakeReadHandle:
        return FakeReadHandle(self, self._inode(path))

    def open_write(self, path: str, *, create: bool = False, exclusive: bool = False) -> FakeWriteHandle:
        if path in self.entries:
            if exclusive:
                raise FileExistsError(errno.EEXIST, "File exists", path)
            return FakeWriteHandle(self, self._inode(path), path)
        if not create:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if posixpath.dirname(path) not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self._check_dir_writable(path)
        self._tick()
        inode = Inode()
        self.entries[path] = inode
        self.dir_ops.append(("link", path, inode))
        return FakeWriteHandle(self, inode, path)

    def rename(self, src: str, dst: str) -> None:
        self._inode(src)
        self._check_dir_writable(dst)
        self._tick()
        self.entries[dst] = self.entries.pop(src)
        self.dir_ops.append(("rename", src, dst))

    def remove(self, path: str) -> None:
        self._inode(path)
        self._check_dir_writable(path)
        self._tick()
        del self.entries[path]
        self.dir_ops.append(("unlink", path))

    def fsync_dir(self, path: str) -> None:
        self._tick()
        keep = []
        for op in self.dir_ops:
            if posixpath.dirname(op[1]) != path:
                keep.append(op)
        self.dir_ops = keep
        for p in [p for p in self.durable_entries if posixpath.dirname(p) == path]:
            del self.durable_entries[p]
        self.durable_entries.update({p: i for p, i in self.entries.items() if posixpath.dirname(p) == path})

    def lock(self, path: str) -> FakeLock:
        if path in self.locks:
            raise BlockingIOError(errno.EWOULDBLOCK, "Resource temporarily unavailable", path)
        self._check_dir_writable(path)
        self.locks.add(path)
        return FakeLock(self, path)


class FakeLock:
    def __init__(self, fs: FakeFS, path: str) -> None:
        self.fs, self.path = fs, path

    def release(self) -> None:
        self.fs.locks.discard(self.path)


class FakeReadHandle:
    def __init__(self, fs: FakeFS, inode: Inode) -> None:
        self.fs, self.inode = fs, inode

    def pread(self, offset: int, size: int) -> bytes:
        if self.fs.crashed:
            raise Crash("machine is down")
        return bytes(self.inode.data[offset:offset + size])

    def size(self) -> int:
        return len(self.inode.data)

    def close(self) -> None:
        pass


class FakeWriteHandle:
    def __init__(self, fs: FakeFS, inode: Inode, path: str) -> None:
        self.fs, self.inode, self.path = fs, inode, path

    def write(self, data: bytes) -> None:
        fs = self.fs
        fs._tick()
        data = bytes(data)
        room = None if fs.capacity is None else max(0, fs.capacity - fs._used())
        part = data if room is None or room >= len(data) else data[:room]
        if part:
            self.inode.pending.append(("write", len(self.inode.data), part))
            self.inode.data += part
        if len(part) < len(data):
            raise OSError(errno.ENOSPC, "No space left on device", self.path)

    def fsync(self) -> None:
        fs = self.fs
        fs._tick()
        fs.fsyncs += 1
        if fs.fail_fsync_at is not None and fs.fsyncs >= fs.fail_fsync_at:
            raise OSError(errno.EIO, "Input/output error", self.path)
        self.inode.durable = bytearray(self.inode.data)
        self.inode.pending = []

    def truncate(self, size: int) -> None:
        self.fs._tick()
        del self.inode.data[size:]
        self.inode.data.extend(bytes(max(0, size - len(self.inode.data))))
        self.inode.pending.append(("truncate", size))

    def size(self) -> int:
        return len(self.inode.data)

    def close(self) -> None:
        pass
