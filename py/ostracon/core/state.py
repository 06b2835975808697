"""CRDT state of one document, and the rules that make merge order-independent.

- Fields are last-writer-wins registers ordered by the stamp `(hlc, actor, cid)`; the CID
  breaks the (malicious or buggy) tie of one actor reusing a clock value.
- `unset` is an LWW write of "absent".
- Counters: increments are kept as a set. A counter's value is its LWW base (the last
  `set`, if numeric) plus every increment stamped after the base. Increments on a
  non-numeric base are ignored (the base wins); on an absent base they start from 0. Sums
  are taken in stamp order so float results do not depend on delivery.
  Counter arithmetic is total: a counter holds an int in [COUNTER_MIN, COUNTER_MAX] or a
  finite float. An increment whose result would leave that range (or overflow a float to
  infinity) is skipped, deterministically, since the sum runs in stamp order; local writes
  refuse such an increment up front (`counter_add`).
- Delete wins against every write it has not seen (docs/MERGE.md). A change is *visible*
  when every delete of the document is in its causal past (reachable through its parents).
  A delete therefore hides the writes before it *and* the writes concurrent with it; only
  writes made after it (a re-create, and edits of that re-created document) are visible.
  Visible writes never mix with hidden ones, so a merge never yields a fragment: whatever
  document is visible is exactly what some editor saw, plus concurrent edits made on top
  of the same live document. Counters and text fields follow the same rule (their
  increments and text ops are writes); a delete empties the text CRDTs too.
- Text fields (core/text.py): a visible text op merges its batch into the field's text CRDT
  character by character, whatever its stamp, and is also an LWW write of "the text" to the
  field. So the field shows the text while the latest text op is stamped after the latest
  `set`/`unset`; a `set` stamped after every text op replaces the text (its characters stay
  in the CRDT), and a later text op shows the text again. Reads see the text as a plain str.

Because a newly arriving delete is never in the causal past of a change already applied
(delivery is causal), its arrival hides everything applied so far, and a change whose past
lacks one of the known deletes can never become visible later: hidden writes are dropped
at once, and the state keeps only what is visible.

Everything visible is a function of the *set* of applied changes, never of their order:
that is the invariant the simulator and the hypothesis tests check.
"""

from __future__ import annotations

import copy
import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from itertools import repeat
from operator import attrgetter
from typing import Any

from . import clock
from .block import OP_DELETE, OP_INCR, OP_SET, OP_TEXT, OP_UNSET, Change
from .cid import format_cid
from .encoding import encode_canonical
from .text import TextCRDT

Stamp = tuple  # (hlc, actor, cid)

#: Range of an integer counter: signed 64 bits, what every client language can hold exactly
#: and what an increment's delta is limited to. Larger ints may be stored with `set` (up to
#: encoding.MAX_INT_BITS), but a counter never grows beyond this range.
COUNTER_MIN = -(2**63)
COUNTER_MAX = 2**63 - 1
_FLOAT_MAX = 1.7976931348623157e308

_ABSENT = object()
_NO_DELETES: frozenset = frozenset()
#: Field value meaning "the field's text CRDT" (see DocState.texts).
_TEXT = object()


def counter_add(total: int | float, delta: int | float) -> int | float | None:
    """`total + delta` if the result is a legal counter value, else None.

    Ints add exactly and must stay in [COUNTER_MIN, COUNTER_MAX]; if either side is a
    float the sum is a float (IEEE 754 double, the same in every runtime) and must be
    finite. A total outside the legal range (e.g. a huge int written with `set`) accepts no
    increment at all.
    """
    if type(total) is int and type(delta) is int:
        exact = total + delta
        return exact if COUNTER_MIN <= exact <= COUNTER_MAX else None
    if type(total) is int and not COUNTER_MIN <= total <= COUNTER_MAX:
        return None
    if type(delta) is int and not COUNTER_MIN <= delta <= COUNTER_MAX:
        return None
    out = total + delta  # at least one float; ints in range convert exactly enough, never raise
    return out if -_FLOAT_MAX <= out <= _FLOAT_MAX else None


class DocState:
    __slots__ = ("collection", "doc_id", "heads", "height", "version", "min_t", "max_t",
                 "fields", "incs", "deletes", "past", "live", "cids", "texts", "_view", "_digest",
                 "_pending", "_row")

    def __init__(self, collection: str, doc_id: str) -> None:
        self.collection = collection
        self.doc_id = doc_id
        self.heads: set[bytes] = set()
        self.height = 0
        self.version = 0
        self.min_t = 0
        self.max_t = 0
        # Visible writes only. field -> (stamp, value or _ABSENT)
        self.fields: dict[str, tuple[Stamp, Any]] = {}
        # field -> list of (stamp, delta), visible increments only
        self.incs: dict[str, list[tuple[Stamp, Any]]] = {}
        # CIDs of every delete of this document (replaced, never changed in place: a snapshot
        # load shares one empty set among the documents that have no delete)
        self.deletes: AbstractSet[bytes] = _NO_DELETES
        # cid -> the deletes in its causal past (itself included if it is one); a change
        # with no delete in its past has no entry, so documents never deleted pay nothing.
        self.past: dict[bytes, frozenset] = {}
        # a visible write exists (a document whose every write is hidden is deleted)
        self.live = False
        self.cids: list[bytes] = []  # every change of this document, in apply order
        self.texts: dict[str, TextCRDT] = {}  # field -> text CRDT (every visible text op)
        self._view: dict | None = None
        self._digest: bytes | None = None

    @classmethod
    def deferred_many(cls, collection: Iterable[str], doc_id: list[str], live: Iterable[bool],
                      deletes: Iterable[AbstractSet[bytes]], loader: Callable[[int, DocState], None]
                      ) -> list[DocState]:
        """States of `len(doc_id)` documents, one column per part (the other columns at least
        as long), whose other parts are filled on first use by `loader(i, state)`, i the
        document's position in the columns (a snapshot loads 10,000 documents without
        building each one: core/snapshot.py). `live` and `deletes` are set at once, so
        `deleted` and counting never fill a state. Built by C-level `map`s, with no Python
        step per document (in Pyodide a loop step costs several times its native cost, and
        such a loop was most of a reopen's snapshot load) and no object per document but the
        state: one shared `loader` and the position, not a closure each (every object made
        at open is one more for the collector's first pass after it)."""
        n = len(doc_id)
        states = list(map(object.__new__, repeat(cls, n)))
        for name, values in (("collection", collection), ("doc_id", doc_id), ("live", live),
                             ("deletes", deletes), ("_pending", repeat(loader, n)), ("_row", range(n))):
            deque(map(setattr, states, repeat(name), values), maxlen=0)
        return states

    def __getattr__(self, name: str) -> Any:
        # Only reached for a slot never set: a deferred state that was not filled yet (its
        # merge state, `_view` and `_digest` are unset until then).
        try:
            loader = object.__getattribute__(self, "_pending")
        except AttributeError:
            raise AttributeError(name) from None
        if loader is None:
            raise AttributeError(name)
        self._pending = None
        self._view = None
        self._digest = None
        try:
            loader(self._row, self)
        except BaseException:
            self._pending = loader  # a failed fill is retried (and fails again) on next use
            raise
        return object.__getattribute__(self, name)

    # ------------------------------------------------------------ undo (atomic batches)

    def copy(self, texts: bool = False) -> DocState:
        """An independent copy of the merge state, for undoing an atomic batch (db/batch.py).
        Containers the merge mutates are copied; values and stamps are immutable and shared.
        texts=True copies the text CRDTs too (they change only by text ops, so a caller that
        applies none may share them). Fills a deferred state first."""
        c = DocState(self.collection, self.doc_id)
        c.heads = set(self.heads)
        c.height, c.version, c.min_t, c.max_t = self.height, self.version, self.min_t, self.max_t
        c.fields = dict(self.fields)
        c.incs = {k: list(v) for k, v in self.incs.items()}
        c.deletes = set(self.deletes)
        c.past = dict(self.past)
        c.live = self.live
        c.cids = list(self.cids)
        c.texts = {k: copy.deepcopy(v) for k, v in self.texts.items()} if texts else dict(self.texts)
        return c

    def restore(self, saved: DocState) -> None:
        """Become `saved` again (a copy made by `copy`), keeping this object's identity:
        indexes and handles that hold it see the restored state."""
        for name in ("heads", "height", "version", "min_t", "max_t", "fields", "incs", "deletes",
                     "past", "live", "cids"):
            setattr(self, name, getattr(saved, name))
        texts = {}
        for k, t in saved.texts.items():
            live = self.texts.get(k)
            if live is not None and live is not t:
                live.restore(t)   # text handles hold the live CRDT
                t = live
            texts[k] = t
        self.texts = texts
        self._view = None
        self._digest = None
        self._pending = None

    # ------------------------------------------------------------ merge

    def _past_of(self, parents: tuple) -> frozenset:
        past = self.past
        out = _NO_DELETES
        for p in parents:
            s = past.get(p, _NO_DELETES)
            if s is not out and s:
                out = s if not out else out | s
        return out

    def apply(self, cid: bytes, ch: Change) -> None:
        """Merge one change whose parents are already applied (causal delivery)."""
        heads = self.heads
        for p in ch.parents:
            heads.discard(p)
        heads.add(cid)
        self.cids.append(cid)
        if ch.height > self.height:
            self.height = ch.height
        self.version += 1
        t = ch.hlc
        if self.version == 1 or t < self.min_t:
            self.min_t = t
        if t > self.max_t:
            self.max_t = t
        self._view = None
        self._digest = None
        seen = self._past_of(ch.parents)
        if any(op[0] == OP_DELETE for op in ch.ops):
            # Nothing applied so far has this delete in its past: all of it is hidden now.
            self.deletes = self.deletes | {cid}
            self.past[cid] = seen | {cid}
            self.fields = {}
            self.incs = {}
            self.texts = {}
            self.live = False
            return
        if seen:
            self.past[cid] = seen
        if len(seen) != len(self.deletes):
            return  # concurrent with (or before) a known delete: the delete wins
        # Any visible change (even one with no operations, e.g. creating an empty
        # document) is a write: it makes the document live.
        self.live = True
        stamp = (t, ch.actor, cid)
        fields = self.fields
        for op in ch.ops:
            kind = op[0]
            if kind == OP_SET or kind == OP_UNSET:
                name = op[1]
                cur = fields.get(name)
                if cur is None or stamp > cur[0]:
                    fields[name] = (stamp, op[2] if kind == OP_SET else _ABSENT)
            elif kind == OP_INCR:
                self.incs.setdefault(op[1], []).append((stamp, op[2]))
            elif kind == OP_TEXT:
                name = op[1]
                text = self.texts.get(name)
                if text is None:
                    text = self.texts[name] = TextCRDT()
                text.apply_batch(ch.actor, op[2])
                cur = fields.get(name)
                if cur is None or stamp > cur[0]:
                    fields[name] = (stamp, _TEXT)

    # ------------------------------------------------------------ views

    @property
    def deleted(self) -> bool:
        return not self.live and bool(self.deletes)

    @staticmethod
    def count_deleted(states: Iterable[DocState]) -> int:
        """How many of `states` are `deleted`. Only the states with a delete are looked at one
        by one (the rest are skipped by a C-level filter): counting 10,000 documents never
        deleted costs no Python step per document, and never builds a deferred state."""
        return sum(1 for d in filter(_DELETES, states) if not d.live)

    def _counter(self, name: str, base: tuple | None) -> tuple[bool, Any, Stamp | None]:
        """(present, value, stamp of the write that decided it) for a counter field."""
        if base is not None and base[1] is _ABSENT:
            floor: Stamp | None = base[0]  # an unset: later increments start from 0
            base = None
        else:
            floor = None if base is None else base[0]
        if base is not None and (type(base[1]) not in (int, float)):
            return True, base[1], base[0]
        live = sorted(i for i in self.incs[name] if floor is None or i[0] > floor)
        if not live:
            if base is not None:
                return True, base[1], base[0]
            return False, None, None
        total = base[1] if base is not None else 0
        decided = base[0] if base is not None else None
        for stamp, delta in live:
            nxt = counter_add(total, delta)
            if nxt is not None:  # out of range: this increment does not count (see module doc)
                total, decided = nxt, stamp
        if decided is None:
            return False, None, None
        return True, total, decided

    def user_fields(self) -> dict:
        """Visible user fields, keys sorted (a fresh dict each call is not needed: cached)."""
        if self._view is not None:
            return self._view
        out: dict[str, Any] = {}
        incs = self.incs
        for name, entry in self.fields.items():
            if name in incs:
                continue
            if entry[1] is not _ABSENT:
                out[name] = entry[1]
        for name in incs:
            present, value, _ = self._counter(name, self.fields.get(name))
            if present:
                out[name] = value
        texts = self.texts
        self._view = {k: (str(texts[k]) if out[k] is _TEXT else out[k]) for k in sorted(out)}
        return self._view

    def is_text(self, name: str) -> bool:
        """True if field `name` currently shows its text CRDT."""
        entry = self.fields.get(name)
        return entry is not None and entry[1] is _TEXT and name not in self.incs

    def text(self, name: str) -> TextCRDT | None:
        """The field's text CRDT (whether or not the field shows it), or None."""
        return self.texts.get(name)

    def local_text(self, name: str, actor: bytes) -> TextCRDT:
        """The field's text CRDT bound to `actor` for local edits (created empty if needed).
        Call `touch()` after editing it so cached views are rebuilt."""
        text = self.texts.get(name)
        if text is None:
            text = self.texts[name] = TextCRDT()
        if text.me < 0 or text.actors[text.me] != actor:
            text.bind(actor)
        return text

    def touch(self) -> None:
        """Drop cached views after a local text edit."""
        self._view = None
        self._digest = None

    def text_blame(self, name: str) -> list[tuple[bytes, str]] | None:
        """Who wrote which characters of a text field: [(actor, text), ...] in document order,
        or None if the field does not show a text."""
        return self.texts[name].blame() if self.is_text(name) else None

    def blame(self) -> dict[str, Stamp]:
        """field -> stamp (hlc, actor, cid) of the write that decided its current value."""
        out: dict[str, Stamp] = {}
        for name, entry in self.fields.items():
            if name not in self.incs and entry[1] is not _ABSENT:
                out[name] = entry[0]
        for name in self.incs:
            present, _, stamp = self._counter(name, self.fields.get(name))
            if present and stamp is not None:
                out[name] = stamp
        return {k: out[k] for k in sorted(out)}

    def heads_text(self) -> list[str]:
        return [format_cid(h) for h in sorted(self.heads)]

    def to_doc(self) -> dict:
        """User fields plus the reserved metadata fields, as returned by `get` (`flat_doc`)."""
        return flat_doc(self, self.heads_text())

    def data_hash(self) -> str:
        """sha256 of the canonical encoding of the visible user fields (hex)."""
        return hashlib.sha256(encode_canonical(self.user_fields())).hexdigest()

    def digest(self) -> bytes:
        """This document's contribution to the replica's state hash."""
        if self._digest is None:
            self._digest = hashlib.sha256(encode_canonical(
                [self.collection, self.doc_id, self.deleted, self.user_fields(), sorted(self.heads)]
            )).digest()
        return self._digest


def flat_doc(state: DocState, heads: list[str] | None) -> dict:
    """The document as every read returns it (DESIGN §3): a new dict of the visible user
    fields (nested values shared with `state`), then the metadata `_id`, `_collection`,
    `_version` (changes applied), `_created` and `_updated` (wall-clock ms of the oldest and
    newest change's hybrid logical clock), `_deleted`, and `_heads` = `heads` (the sorted
    head CIDs as text; the caller formats them, e.g. through a cache) unless `heads` is None.
    The one place these fields are put together, so `get`, queries, indexes and the browser's
    read view cannot drift apart."""
    doc = dict(state.user_fields())
    doc["_id"] = state.doc_id
    doc["_collection"] = state.collection
    doc["_version"] = state.version
    doc["_created"] = clock.wall_ms(state.min_t)
    doc["_updated"] = clock.wall_ms(state.max_t)
    doc["_deleted"] = state.deleted
    if heads is not None:
        doc["_heads"] = heads
    return doc


#: A state's deletes (truthy when it has any), for `DocState.count_deleted`.
_DELETES = attrgetter("deletes")
