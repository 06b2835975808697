"""Documents of one collection as the query layer sees them: views over the replica's live
states (no copies), the sorted id order, and the planner's DocSource adapter.

A view is `core.state.flat_doc` (what `DocState.to_doc()` also returns), brought to the
collection's current schema version through the registered lenses when the document was
written under an older one. Views share nested values with the replica's state: whoever
hands one out copies it first (`own`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..core import cid as cidlib
from ..core.query.schema import Schema
from ..core.query.schema_registry import SchemaRegistry
from ..core.replica import Replica
from ..core.state import DocState, flat_doc

if TYPE_CHECKING:
    from .engine import Engine

_EMPTY: dict = {}


def copy_value(value: Any) -> Any:
    """Deep copy of a stored value, so callers cannot mutate the replica's state."""
    t = type(value)
    if t is dict:
        return {k: copy_value(v) for k, v in value.items()}
    if t is list:
        return [copy_value(v) for v in value]
    return value


def own(doc: dict) -> dict:
    """Make a freshly built view safe to hand out: its top-level dict is new already, so
    only nested containers (shared with the replica's state) are copied."""
    for k, v in doc.items():
        t = type(v)
        if t is dict or t is list:
            doc[k] = copy_value(v)
    return doc


class DocViews:
    """The live documents of one collection, viewed (see the module docstring)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.replica: Replica = engine.replica
        self.name = name
        self.ids: list[str] | None = None   # sorted ids; kept up to date once built
        self.schema: Schema | None = None
        self.schema_raw: bytes | None = None
        self.lens = False  # the schema has several versions: reads may need a lens

    def refresh_schema(self, registry: SchemaRegistry) -> None:
        if self.name in registry.names():
            s = registry.get(self.name)
            self.schema = s
            self.schema_raw = cidlib.parse_cid(s.version_id)
            self.lens = len(registry.history(self.name)) > 1
        else:
            self.schema = self.schema_raw = None
            self.lens = False

    def states(self) -> dict[str, DocState]:
        return self.replica.collections.get(self.name, _EMPTY)

    def view(self, state: DocState, heads: bool = True) -> dict:
        """A fresh top-level dict; nested values are shared with the state. heads=False
        leaves out `_heads` (indexes cannot hold it; formatting CIDs costs more than the rest
        of the view), and head texts come from a cache."""
        d = flat_doc(state, self.engine.heads_text(state.heads) if heads else None)
        if self.lens:
            d = self.engine.schemas.migrated(self.schema, state, d)
        return d

    def user_view(self, state: DocState) -> dict:
        return {k: v for k, v in self.view(state, False).items() if k[0] != "_"}

    def finish(self, docs: list[dict]) -> list[dict]:
        """Own copies of a result page, with `_heads` added where the query left it out."""
        states = None
        for d in docs:
            own(d)
            if "_heads" not in d:
                if states is None:
                    states = self.states()
                d["_heads"] = self.engine.heads_text(states[d["_id"]].heads)
        return docs

    # ------------------------------------------------------------ id order

    def sorted_ids(self) -> list[str]:
        if self.ids is None:
            self.ids = sorted(self.states())
        return self.ids

    def note_id(self, doc_id: str) -> None:
        """A document id may be new: keep the sorted id list current (O(log n) + memmove)
        instead of re-sorting every id on the next scan."""
        ids = self.ids
        if ids is not None:
            i = bisect.bisect_left(ids, doc_id)
            if i == len(ids) or ids[i] != doc_id:
                ids.insert(i, doc_id)

    def forget_order(self) -> None:
        """Free the sorted id list (a cold collection gives back what it can)."""
        self.ids = None

    def scan(self, prefix: str, after: str | None, limit: int, include_deleted: bool,
             heads: bool = True) -> tuple[list[dict], str | None]:
        """Views ordered by id, ids starting with `prefix`, after `after`: (page, cursor)."""
        ids = self.sorted_ids()
        start = prefix if after is None or after < prefix else after
        if after is not None and after >= prefix:
            i = bisect.bisect_right(ids, start)
        else:
            i = bisect.bisect_left(ids, start)
        docs = self.states()
        out: list[dict] = []
        view = self.view
        while i < len(ids):
            doc_id = ids[i]
            if not doc_id.startswith(prefix):
                return out, None
            state = docs[doc_id]
            i += 1
            if state.deleted and not include_deleted:
                continue
            out.append(view(state, heads))
            if len(out) >= limit:
                more = i < len(ids) and ids[i].startswith(prefix)
                return out, (doc_id if more else None)
        return out, None

    # ------------------------------------------------------------ DocSource parts

    def count_all(self) -> int:
        """Documents including tombstones: what a scan has to step over."""
        return len(self.states())

    def iter_views(self, heads: bool) -> list[dict]:
        view = self.view
        return [view(s, heads) for s in self.states().values() if not s.deleted]


class Source:
    """The planner's DocSource over one collection's live documents (views, never copies:
    the Collection copies the page it returns)."""

    __slots__ = ("views", "heads")

    def __init__(self, views: DocViews, heads: bool = True) -> None:
        self.views = views
        self.heads = heads  # build `_heads` (formatting CIDs is the costly part of a view)

    def get(self, doc_id: str) -> dict | None:
        s = self.views.states().get(doc_id)
        if s is None or s.deleted:
            return None
        return self.views.view(s, self.heads)

    def iter_docs(self) -> list[dict]:
        return self.views.iter_views(self.heads)

    def count_all(self) -> int:
        return self.views.count_all()

    def iter_by_id(self, after_id: str | None = None) -> Iterator[dict]:
        v = self.views
        ids = v.sorted_ids()
        docs = v.states()
        view, heads = v.view, self.heads
        i = 0 if after_id is None else bisect.bisect_right(ids, after_id)
        n = len(ids)
        while i < n:
            s = docs.get(ids[i])
            i += 1
            if s is not None and not s.deleted:
                yield view(s, heads)
