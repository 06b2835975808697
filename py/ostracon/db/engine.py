"""The engine of one open database: the parts every collection shares (replica, write sink,
change feed, indexing, schemas) and the write path that ties them together.

`Database` is the public facade over it and `Collection` the document API; both use only
the engine's public members (a layering test says so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..core import cid as cidlib
from ..core.errors import ClosedError, NotFoundError, ReadOnlyError, ValidationError
from ..core.feed import ChangeFeed
from ..core.replica import Replica
from ..core.state import DocState
from ..storage.base import Storage
from .indexing import Indexing
from .schemas import SchemaCatalog
from .sink import WriteSink

#: Subscriber callback exceptions kept for inspection (the newest ones).
CALLBACK_ERRORS_KEPT = 20
#: Binary CID -> text cache for `_heads` of views (base32 formatting is ~10 µs per CID in
#: CPython 3.11, more than the rest of a view): ~140 bytes per entry, cleared when full.
CID_TEXT_CACHE_MAX = 65_536

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


class Engine:
    """Shared state and the write path of one open database (see the module docstring)."""

    def __init__(self, storage: Storage, replica: Replica, sink: WriteSink, indexing: Indexing,
                 schemas: SchemaCatalog, *, clock: Callable[[], int],
                 random_bytes: Callable[[int], bytes], fallback_docs_max: int) -> None:
        self.storage = storage
        self.replica = replica
        self.sink = sink
        self.indexing = indexing
        self.schemas = schemas
        self.clock = clock
        self.random_bytes = random_bytes
        self.fallback_docs_max = fallback_docs_max
        self.feed: ChangeFeed | None = None   # set once the stored state is loaded
        self.closed = False
        # The last wall-clock reading the database made (writes and tick() read the clock);
        # access times use it so reads never call the clock (scripted clocks stay exact).
        self.now = 0
        self.listeners: list[Callable[[str, str, DocState], None]] = []
        self.callback_errors: list[Exception] = []
        self._cid_text: dict[bytes, str] = {}

    # ------------------------------------------------------------ checks

    def check_open(self) -> None:
        if self.closed:
            raise ClosedError("the database is closed")

    def check_writable(self) -> None:
        self.check_open()
        if self.storage.read_only:
            raise ReadOnlyError("the database was opened read-only")

    # ------------------------------------------------------------ write path

    def new_id(self) -> str:
        """Time-sortable id: the 64-bit clock stamp then 64 random bits, base32 (26 chars)."""
        stamp = self.replica.clock.now(self.clock())
        n = (stamp << 64) | int.from_bytes(self.random_bytes(8), "big")
        return "".join(_CROCKFORD[(n >> s) & 31] for s in range(125, -1, -5))

    def write(self, collection: str, doc_id: str, ops: list, schema: bytes | None = None) -> bytes:
        """Commit validated ops as one block, publish the change, queue it; returns the CID.
        Flushes when the sink's rule says so (a failure is kept for the next flush)."""
        now = self.clock()
        self.now = now
        cid, data, state = self.replica.commit(collection, doc_id, ops, now, schema)
        self.sink.add_local(data, now)
        self.publish(collection, doc_id, state)
        self.sink.flush_if_due(now)
        return cid

    def publish(self, collection: str, doc_id: str, state: DocState) -> None:
        """A visible change (local or merged) → change feed, indexes, listeners."""
        # The change is applied already: a failing subscriber callback must not make the
        # write look failed. Errors are kept (bounded) in `callback_errors` for the app.
        try:
            if self.feed is not None:
                self.feed.publish(collection, doc_id, state.version, state.deleted,
                                  state.min_t >> 16, state.max_t >> 16, state.user_fields())
        except Exception as exc:  # noqa: BLE001 - user code
            self.callback_error(exc)
        self.indexing.maintain(collection, doc_id, state, self.now)
        for fn in self.listeners:
            fn(collection, doc_id, state)

    def callback_error(self, exc: Exception) -> None:
        self.callback_errors.append(exc)
        del self.callback_errors[:-CALLBACK_ERRORS_KEPT]

    # ------------------------------------------------------------ reading helpers

    def heads_text(self, heads: Iterable[bytes]) -> list[str]:
        cache = self._cid_text
        out = []
        for h in sorted(heads):
            t = cache.get(h)
            if t is None:
                if len(cache) >= CID_TEXT_CACHE_MAX:
                    cache.clear()
                t = cache[h] = cidlib.format_cid(h)
            out.append(t)
        return out

    def state_at(self, state: DocState, at: Any) -> DocState:
        """The document as it was at commit `at` (a CID, or a list of head CIDs)."""
        heads = [at] if isinstance(at, (str, bytes)) else list(at)
        if not heads:
            raise ValidationError("`at` needs at least one CID")
        r = self.replica
        wanted: set[bytes] = set()
        stack = []
        for h in heads:
            raw = cidlib.parse_cid(h)
            info = r.info.get(raw)
            if info is None or info.collection != state.collection or info.doc_id != state.doc_id:
                raise NotFoundError(f"{cidlib.format_cid(raw)} is not a commit of {state.collection}/{state.doc_id}")
            stack.append(raw)
        while stack:
            c = stack.pop()
            if c in wanted:
                continue
            wanted.add(c)
            stack.extend(r.change(c).parents)
        past = DocState(state.collection, state.doc_id)
        for c in state.cids:  # apply order is causal, so parents come first
            if c in wanted:
                past.apply(c, r.change(c))
        return past
