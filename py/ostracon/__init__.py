"""Ostracon: a local-first, verifiable document store.

    import ostracon
    with ostracon.open("notes.db") as db:
        todos = db.collection("todos")
        doc_id = todos.create({"title": "write docs", "done": False})
        todos.patch(doc_id, {"done": True})
        print(todos.history(doc_id))
"""

from .core.errors import (
    ClosedError,
    ConflictError,
    CorruptBlockError,
    CorruptLogError,
    CorruptSnapshotError,
    CryptoError,
    CursorError,
    DiskFullError,
    FrameError,
    HistoryPrunedError,
    LockedError,
    MemberLogFullError,
    NotFoundError,
    OstraconError,
    ProtocolError,
    ReadOnlyError,
    SignatureError,
    StorageError,
    StorageUnavailableError,
    TransportError,
    ValidationError,
    WrongKeyError,
)
from .core.feed import ChangeEvent, Subscription
from .core.text import Cursor as TextCursor
from .db import (
    Collection,
    Database,
    IndexBuildingError,
    LensNotFoundError,
    QueryCursorError,
    QueryTooExpensiveError,
    SchemaValidationError,
    Text,
    TextHandle,
)
from .db import open_database as open

__version__ = "0.1.0"


def __getattr__(name: str) -> type:  # Identity/Space import the crypto backend: load on first use
    if name == "Identity":
        from .crypto.identity import Identity
        return Identity
    if name == "Space":
        from .crypto.space import Space
        return Space
    raise AttributeError(name)


__all__ = [
    "open", "Database", "Collection", "ChangeEvent", "Subscription", "Identity", "Space",
    "OstraconError", "ValidationError", "ConflictError", "NotFoundError", "CorruptBlockError",
    "SignatureError", "CursorError", "HistoryPrunedError", "ClosedError", "StorageError",
    "StorageUnavailableError", "LockedError", "CorruptLogError", "CorruptSnapshotError",
    "DiskFullError", "ReadOnlyError", "CryptoError", "WrongKeyError", "FrameError",
    "ProtocolError", "TransportError", "QueryTooExpensiveError", "IndexBuildingError",
    "QueryCursorError", "SchemaValidationError", "LensNotFoundError", "MemberLogFullError",
    "Text", "TextHandle", "TextCursor",
]
