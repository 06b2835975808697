"""Private files and directories for relay state, and where that state lives by default."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import StorageUnavailableError


def create_private(path: Path) -> None:
    """Create the database file readable by its owner only (0600) before SQLite opens it:
    SQLite gives its -wal and -shm files the database file's mode. An existing file keeps
    its mode (the operator may have chosen another on purpose)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StorageUnavailableError(f"cannot create mailbox {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # independent of the umask
    finally:
        os.close(fd)


def private_dir(path: Path) -> Path:
    """``mkdir -p`` whose new directories are 0700 (independent of the umask)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)
    return path


def default_data_dir() -> Path:
    """Where the relay keeps its mailbox by default: ``$XDG_DATA_HOME/ostracon/relay`` (the XDG
    Base Directory spec; ``~/.local/share`` when the variable is unset or not absolute)."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "ostracon" / "relay"


