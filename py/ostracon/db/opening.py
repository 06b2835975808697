"""Opening a database: choosing storage and loading or creating the identity. Replaying
what storage holds into the replica, verified, is verification.py's part."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import ValidationError
from ..storage.base import Storage

if TYPE_CHECKING:
    from .database import Database

#: Name of the identity key file inside a database directory (mode 0600).
IDENTITY_FILE = "identity.key"


def check_options(call: str, given: dict, fn: Callable) -> None:
    """Refuse keyword options `fn` does not take with a ValidationError naming the closest
    one (a misspelt limit must not be ignored, nor surface as a TypeError)."""
    import difflib
    import inspect

    known = [n for n, p in inspect.signature(fn).parameters.items()
             if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for name in sorted(given):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValidationError(f"{call}: unknown option {name!r}{hint}")


def open_database(path: Any = None, *, identity: Any = None, clock: Callable[[], int] | None = None,
                  storage: Storage | None = None, crypto: Any = None, durability: str = "flush",
                  read_only: bool = False, repair: bool = False, require_signatures: bool = True,
                  random_bytes: Callable[[int], bytes] | None = None, **limits: Any) -> Database:
    """Open (or create) a database.

    path None → in memory. A directory path → durable file storage (see docs/STORAGE.md);
    the directory's identity is kept in `identity.key` (mode 0600) unless one is given.
    clock: wall time in ms (default: the system clock). random_bytes: id randomness.
    `limits`: the keyword parameters of `Database` (sink, feed, query and tier limits).
    """
    from ..crypto import default_backend
    from ..crypto.identity import Identity
    from .database import Database

    check_options("open", limits, Database.__init__)
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ValidationError(f"open: path must be None, a str or an os.PathLike, not {type(path).__name__}")
    if path is not None and "\x00" in os.fspath(path):   # no file system can name it
        raise ValidationError("open: path must not contain a NUL character")

    if identity is not None and not isinstance(identity, Identity):
        raise ValidationError(f"open: identity must be an ostracon.Identity, not {type(identity).__name__}")
    crypto = crypto or default_backend()
    if storage is None:
        if path is None:
            from ..storage.memory import MemoryStorage
            storage = MemoryStorage()
        else:
            from ..storage.file import FileStorage
            storage = FileStorage(os.fspath(path), durability=durability, read_only=read_only,
                                  repair=repair)
    try:
        if identity is None:
            if path is not None:
                key_path = os.path.join(os.fspath(path), IDENTITY_FILE)
                if read_only:
                    identity = (Identity.load(key_path, crypto=crypto) if os.path.exists(key_path)
                                else Identity.generate(crypto))
                else:
                    identity = Identity.load_or_generate(key_path, crypto=crypto)
            else:
                identity = Identity.generate(crypto)
        return Database(storage, identity=identity, crypto=crypto, clock=clock, repair=repair,
                        random_bytes=random_bytes, require_signatures=require_signatures,
                        location=None if path is None else os.fspath(path), **limits)
    except BaseException:
        storage.close()
        raise
