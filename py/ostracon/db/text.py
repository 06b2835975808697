"""Collaborative text fields: the `Text` value, the editing handle and editing bursts.

    notes = db.collection("notes")
    doc_id = notes.create({"title": "Groceries", "body": ostracon.Text("milk")})
    body = notes.text(doc_id, "body")
    body.insert(4, ", eggs")           # positions are Unicode code points
    cur = body.cursor(0)               # survives remote edits
    str(body), body.resolve(cur)

A text field merges concurrent edits character by character (core/text.py). Reads through
the collection see it as a plain `str`, so queries and indexes treat it as one.

Editing bursts: edits are applied to memory at once (the handle shows them), and the edits
of one document field become ONE block per burst. A burst is committed when
- it holds TEXT_BURST_OPS edits, or TEXT_BURST_CHARS inserted code points (bounds a block), or
- TEXT_BURST_MS have passed since its first edit (checked at the next edit and by
  `db.tick()`), or
- anything else reads or writes through a collection, or the database flushes, syncs,
  computes `state_hash`, lists blocks or closes (they all see every edit), or
- `db.flush_text()` / `handle.commit()` is called.
So typing produces about one block per second, and nothing outside the handle ever sees a
state that no block describes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.block import OP_TEXT, check_field
from ..core.cid import format_cid, parse_cid
from ..core.errors import NotFoundError, ValidationError
from ..core.state import DocState
from ..core.text import TEXT_BURST_OPS, Cursor, TextCRDT, check_text
from ..core.textcodec import empty_batch, encode_state, load_state
from .locking import locked

if TYPE_CHECKING:
    from .engine import Engine
    from .textmirror import TextMirror

#: A burst older than this (ms since its first edit) is committed: about one block per
#: second of typing, so a crash loses at most a second of unflushed keystrokes.
TEXT_BURST_MS = 1000
#: Inserted code points per burst (and per piece of one large insert). 32,768 code points are
#: at most 128 KiB of UTF-8: with the ids and origins, a burst stays below MAX_BLOCK_BYTES.
TEXT_BURST_CHARS = 32_768


class Text:
    """A value that makes a field a collaborative text: `create({"body": Text("hi")})`.

    Assigning it to an existing text field replaces the content (as one text edit, so
    concurrent edits elsewhere still merge)."""

    __slots__ = ("initial",)

    def __init__(self, initial: str = "") -> None:
        self.initial = check_text(initial)

    def __repr__(self) -> str:
        return f"Text({self.initial!r})"


class _Burst:
    __slots__ = ("ops", "chars", "first_ms")

    def __init__(self, first_ms: int) -> None:
        self.ops = 0
        self.chars = 0
        self.first_ms = first_ms


class TextBursts:
    """The open editing bursts of one database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.open: dict[tuple[str, str, str], _Burst] = {}

    def text_op(self, state: DocState | None, field: str, value: Text) -> tuple:
        """The op that makes `field` a text holding `value.initial`, built on a copy of the
        field's CRDT (a refused write then leaves the live one untouched)."""
        actor = self.engine.replica.actor
        base = None
        if state is not None:
            base = state.text(field)
            if base is not None:
                self.commit_doc(state.collection, state.doc_id)
        t = TextCRDT(actor) if base is None else load_state(encode_state(base), actor)
        if len(t):
            t.delete(0, len(t))
        if value.initial:
            t.insert(0, value.initial)
        return (OP_TEXT, field, t.take_batch() or empty_batch(t))

    def edited(self, key: tuple[str, str, str], ops: int, chars: int) -> None:
        """Count a local edit of a text field into its burst; commit the burst when due."""
        e = self.engine
        now = e.clock()
        e.now = now
        b = self.open.get(key)
        if b is None:
            b = self.open[key] = _Burst(now)
            if e.kick is not None:
                e.kick()   # the driver commits the burst when it is due
        b.ops += ops
        b.chars += chars
        if b.ops >= TEXT_BURST_OPS or b.chars >= TEXT_BURST_CHARS or now - b.first_ms >= TEXT_BURST_MS:
            self.commit(key)

    def make_room(self, key: tuple[str, str, str], chars: int) -> None:
        """Commit the open burst first if `chars` more inserted code points would take it past
        TEXT_BURST_CHARS (so no burst outgrows a block)."""
        b = self.open.get(key)
        if b is not None and b.chars + chars > TEXT_BURST_CHARS:
            self.commit(key)

    def commit(self, key: tuple[str, str, str]) -> str | None:
        """Commit one burst as a block; returns its CID text (None if nothing changed)."""
        if self.open.pop(key, None) is None:
            return None
        collection, doc_id, field = key
        e = self.engine
        state = e.replica.doc(collection, doc_id)
        t = None if state is None else state.text(field)
        if t is None:
            return None
        opened = (t.batch_start, list(t.batch_deletes), t.batch_seed)
        batch = t.take_batch()
        if batch is None:
            return None
        try:
            cid = e.write(collection, doc_id, [(OP_TEXT, field, batch)], self.schema_raw(collection))
        except Exception:
            # Not committed: the edits stay pending for the next commit, so no character
            # exists here that no block will ever carry.
            t.batch_start, t.batch_deletes, t.batch_seed = opened
            self.open.setdefault(key, _Burst(e.now))
            raise
        return format_cid(cid)

    def schema_raw(self, collection: str) -> bytes | None:
        """The collection's current schema version id (what its writes are stamped with)."""
        reg = self.engine.schemas.registry
        if collection not in reg.names():
            return None
        return parse_cid(reg.get(collection).version_id)

    def commit_doc(self, collection: str, doc_id: str) -> None:
        for key in [k for k in self.open if k[0] == collection and k[1] == doc_id]:
            self.commit(key)

    def commit_all(self) -> None:
        for key in list(self.open):
            self.commit(key)

    def next_due_ms(self) -> int | None:
        """When the oldest open burst is due (None: no burst open)."""
        if not self.open:
            return None
        return min(b.first_ms for b in self.open.values()) + TEXT_BURST_MS

    def commit_due(self, now: int) -> None:
        for key in [k for k, b in self.open.items() if now - b.first_ms >= TEXT_BURST_MS]:
            self.commit(key)


class TextHandle:
    """Edits one text field of one document: `coll.text(doc_id, field)`.

    Positions and lengths are Unicode code points (a Python str index; the JavaScript API
    converts UTF-16 offsets). Raises ValidationError for positions outside the text or text
    with lone surrogates, NotFoundError once the document is gone."""

    def __init__(self, engine: Engine, bursts: TextBursts, collection: str, doc_id: str,
                 field: str) -> None:
        self._e = engine
        self._bursts = bursts
        self.collection = collection
        self.doc_id = doc_id
        self.field = check_field(field)
        self._key = (collection, doc_id, field)
        self._live: DocState | None = None   # the state last edited, while it shows the text
        self._t: TextCRDT | None = None

    def _state(self) -> DocState:
        self._e.check_open()
        state = self._e.replica.doc(self.collection, self.doc_id)
        if state is None or state.deleted:
            raise NotFoundError(f"{self.collection}/{self.doc_id} does not exist")
        return state

    def _shows_text(self, state: DocState) -> bool:
        """The field is a text: by its latest write, or by local edits of the open burst
        (the first edit of a plain string field: its block makes the field a text)."""
        return state.is_text(self.field) or (
            self._key in self._bursts.open and state.text(self.field) is not None)

    def _crdt(self) -> tuple[DocState, TextCRDT]:
        """The field's CRDT ready for a local edit. A field that is not a text (yet, or no
        more: replaced by a `set`) becomes one in the open burst: its current str value is
        the text's *seed* (core.text.seed_actor), so two devices migrating the same value
        keep one copy, and the first burst's block carries seed and edits together."""
        self._e.check_writable()
        state, t = self._live, self._t
        hook = self._e.replica.before_change  # a snapshot in steps keeps the state before the edit
        if state is not None and t is not None and not state.deleted and self._shows_text(state):
            if hook is not None:
                hook(state)
            return state, t
        state = self._state()
        if hook is not None:
            hook(state)
        if self._shows_text(state):
            t = state.local_text(self.field, self._e.replica.actor)
        else:
            value = state.user_fields().get(self.field)
            if value is not None and type(value) is not str:
                raise ValidationError(f"{self.collection}/{self.doc_id}.{self.field} holds a "
                                      f"{type(value).__name__}, not text")
            self._bursts.make_room(self._key, len(value or ""))
            t = state.local_text(self.field, self._e.replica.actor)
            if len(t):
                t.delete(0, len(t))   # characters a later `set` hid: the set's value replaces them
            entry = state.fields.get(self.field)
            if value and entry is not None:
                t.seed(entry[0][2], value)
            self._done(state, 1, len(value or ""))
        self._live, self._t = state, t
        return state, t

    def _done(self, state: DocState, ops: int, chars: int) -> None:
        state.touch()
        self._bursts.edited(self._key, ops, chars)

    @locked
    def insert(self, pos: int, text: str) -> None:
        """Insert `text` before code point `pos` (0 <= pos <= len)."""
        state, t = self._crdt()
        if type(text) is str and len(text) <= TEXT_BURST_CHARS:
            self._bursts.make_room(self._key, len(text))
            t.insert(pos, text)
            self._done(state, 1, len(text))
            return
        check_text(text)
        if type(pos) is not int or not 0 <= pos <= len(t):
            raise ValidationError(f"insert position {pos!r} outside 0..{len(t)}")
        for i in range(0, len(text), TEXT_BURST_CHARS):
            piece = text[i:i + TEXT_BURST_CHARS]
            self._bursts.make_room(self._key, len(piece))
            t.insert(pos + i, piece)
            self._done(state, 1, len(piece))

    @locked
    def delete(self, pos: int, n: int) -> None:
        """Delete `n` code points starting at `pos`."""
        state, t = self._crdt()
        t.delete(pos, n)
        self._done(state, 1, 0)

    @locked
    def splice(self, pos: int, n: int, text: str = "") -> None:
        """Delete `n` code points at `pos`, then insert `text` there."""
        state, t = self._crdt()
        if type(text) is str and len(text) <= TEXT_BURST_CHARS:
            if text:
                self._bursts.make_room(self._key, len(text))
            t.splice(pos, n, text)
            self._done(state, 1, len(text))
            return
        check_text(text)
        t.delete(pos, n)
        self._done(state, 1, 0)
        self.insert(pos, text)

    @locked
    def __str__(self) -> str:
        state = self._state()
        t = state.text(self.field)
        if t is not None and self._shows_text(state):
            return str(t)
        value = state.user_fields().get(self.field)
        return value if type(value) is str else ""

    @locked
    def __len__(self) -> int:
        state = self._state()
        t = state.text(self.field)
        if t is not None and self._shows_text(state):
            return len(t)
        return len(str(self))

    @locked
    def crdt(self) -> TextCRDT | None:
        """The field's text CRDT while the field is a text (None while it holds a plain value);
        for db/textmirror.py, which maps positions by character id."""
        state = self._state()
        t = state.text(self.field)
        return t if t is not None and self._shows_text(state) else None

    @locked
    def editable(self) -> TextCRDT:
        """The field's text CRDT bound to this device for local edits, making the field a
        text first (see `insert`)."""
        return self._crdt()[1]

    @locked
    def plain_source(self) -> tuple[str, bytes]:
        """(the field's plain string value, CID bytes of the block that wrote it; b"" if
        none): what becomes the text's seed at the first edit."""
        state = self._state()
        entry = state.fields.get(self.field)
        return str(self), (b"" if entry is None else entry[0][2])

    def mirror(self) -> TextMirror:
        """A client copy of this text whose positions are mapped by character id
        (db/textmirror.py)."""
        from .textmirror import TextMirror
        return TextMirror(self, self._e)

    @locked
    def cursor(self, pos: int) -> Cursor:
        """A position that follows edits (local and remote): resolve it with `resolve`."""
        state = self._state()
        t = state.text(self.field)
        if t is None or not self._shows_text(state):
            raise ValidationError(f"{self.collection}/{self.doc_id}.{self.field} is not a text")
        return t.cursor(pos)

    @locked
    def resolve(self, cursor: Cursor) -> int:
        """The current code point position of `cursor`."""
        if type(cursor) is not Cursor:
            raise ValidationError("not a text cursor")
        t = self._state().text(self.field)
        if t is None:
            raise ValidationError(f"{self.collection}/{self.doc_id}.{self.field} is not a text")
        return t.resolve(cursor)

    @locked
    def blame(self) -> list[dict[str, Any]]:
        """Who wrote which characters: [{"actor": hex, "text": str}, ...] in text order."""
        runs = self._state().text_blame(self.field) or []
        return [{"actor": a.hex(), "text": s} for a, s in runs]

    @locked
    def commit(self) -> str | None:
        """End the open burst now; returns the commit CID (None if there was nothing)."""
        self._e.check_open()
        return self._bursts.commit((self.collection, self.doc_id, self.field))
