"""The file layer FileStorage talks to: the real OS by default, a fake in tests.

Everything FileStorage does to the disk goes through one of these methods, so a test can
substitute an in-memory fake that counts fsyncs, runs out of space, refuses permission or
"crashes the machine" (tests/fakefs.py). Methods raise OSError (with an errno) like the OS
does; FileStorage turns those into typed StorageError subclasses.

Paths are plain strings. Write handles always append (O_APPEND): the log is append-only,
and the only other change a file ever sees is a truncate back to a known-good length.
"""

from __future__ import annotations

import errno
import os

from ..core.errors import DiskFullError, StorageError, StorageUnavailableError

try:  # POSIX advisory locks; absent on Windows and in Pyodide (which uses IndexedDB anyway)
    import fcntl
except ImportError:  # pragma: no cover - exercised only off-POSIX
    fcntl = None  # type: ignore[assignment]


class OsReadHandle:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def pread(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsWriteHandle:
    def __init__(self, path: str, create: bool, exclusive: bool) -> None:
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        if exclusive:
            flags |= os.O_EXCL
        self._fd = os.open(path, flags, 0o600)  # plaintext metadata: owner only
        if exclusive:
            os.fchmod(self._fd, 0o600)  # a file we just created: exactly 0600, whatever the umask

    def write(self, data: bytes) -> None:
        # os.write may write less than asked (signals, nearly full disk); loop until all
        # bytes are written or the OS raises (ENOSPC arrives as an OSError here).
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            if n <= 0:  # pragma: no cover - a regular file never returns 0 for a non-empty write
                raise OSError(errno.EIO, "write returned 0")
            view = view[n:]

    def fsync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsLock:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        if fcntl is not None:
            try:
                # flock locks belong to the open file description, so a second open of the
                # same directory in this very process conflicts too (what we want).
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self._fd)
                raise

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1


class OsFileLayer:
    """The real file system."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # exactly 0700, whatever the umask

    def writable(self, path: str) -> bool:
        return os.access(path, os.W_OK | os.X_OK)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def open_read(self, path: str) -> OsReadHandle:
        return OsReadHandle(path)

    def open_write(self, path: str, *, create: bool = False, exclusive: bool = False) -> OsWriteHandle:
        return OsWriteHandle(path, create, exclusive)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def fsync_dir(self, path: str) -> None:
        # A new, renamed or removed directory entry is only durable once the directory
        # itself is fsynced (POSIX; ext4/xfs honour it).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> OsLock:
        """Exclusive, non-blocking lock; raises BlockingIOError when another holder exists."""
        return OsLock(path)


def map_oserror(exc: OSError, what: str, path: str) -> StorageError:
    """The typed StorageError for an OSError, naming what was done to which path."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return DiskFullError(f"{what} {path}: no space left on device ({reason})")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageUnavailableError(f"{what} {path}: not writable ({reason})")
    return StorageError(f"{what} {path}: {reason} (errno {code})")
