"""A client's copy of a text field that lags remote edits: positions mapped by character id.

An editor in another thread or process (the browser page: the engine runs in a Web Worker)
holds its own copy of a text, edits it at once and sends each edit with positions in *its*
copy. Meanwhile remote edits may have changed the live text, so a position in the copy is
not a position in the live text. A `TextMirror` knows the character ids of the copy (its
*view*: one id per visible character) and maps every position through them:

- an insert at copy position p goes right after the character the copy shows at p - 1
  (the start if p = 0), wherever that character is now (where it was, if deleted);
- a delete removes exactly the characters the copy showed, those still visible; characters
  inserted concurrently between them stay.

The copy catches up when its owner asks: `pull(positions)` returns the live text, the given
copy positions (caret, selection) mapped into it, and a token; the owner takes the live text
as its copy and calls `adopt(token)` before sending further edits. Requests arrive in order,
so an owner that sent no edit between `pull` and `adopt` has exactly the pulled text.

Positions are Unicode code points. Cost: a splice is O(view length) for the id list (a
memmove) plus O(chunks) per mapped position; a pull is O(text) — meant for documents of
editor size, not for replaying traces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import ValidationError
from ..core.text import Cursor, TextCRDT, check_text, seed_actor
from .locking import locked

if TYPE_CHECKING:
    from .engine import Engine
    from .text import TextHandle

_SHIFT = 53  # an id in the view: actor index << 53 | counter (counters are below 2**53)
_MASK = (1 << _SHIFT) - 1


class TextMirror:
    """Maps a client copy's positions to the live text of `handle` (see module docstring);
    made by `TextHandle.mirror()`.

    The copy starts as the field's text now (`text` at construction). Raises ValidationError
    for positions outside the copy, NotFoundError once the document is gone."""

    def __init__(self, handle: TextHandle, engine: Engine) -> None:
        self.handle = handle
        self._e = engine
        self._t: TextCRDT | None = None
        self._view: list[int] = []
        self._plain = ""          # the copy while the field is a plain string (not a text yet)
        self._source = b""        # CID bytes of the block that wrote that string
        self._token = 0
        self._pending: tuple[int, TextCRDT | None, list[int], str, bytes] | None = None
        self.text = self._reset()

    # -- the view --------------------------------------------------------------------------

    def _live(self) -> TextCRDT | None:
        return self.handle.crdt()

    def _ids(self, t: TextCRDT) -> list[int]:
        view: list[int] = []
        for ch in t.chunks:
            for r in ch.runs:
                if r.s is not None:
                    k = r.a << _SHIFT | r.c
                    view.extend(range(k, k + r.n))
        return view

    def _reset(self) -> str:
        t = self._live()
        self._t = t
        self._view = [] if t is None else self._ids(t)
        self._plain, self._source = self._plain_value() if t is None else ("", b"")
        return str(self.handle)

    def _plain_value(self) -> tuple[str, bytes]:
        return self.handle.plain_source()

    def _seed_view(self, t: TextCRDT) -> list[int] | None:
        """The ids of a plain copy's characters in text `t`: the plain value became the
        text's seed (db/text.py), whose characters are (seed, 0) .. (seed, n-1) on every
        device. None if `t` did not grow from this value."""
        if not self._plain:
            return []
        a = t.actor_ids.get(seed_actor(self._source, self._plain))
        if a is None or t.next_ctr[a] != len(self._plain):
            return None
        k = a << _SHIFT
        return list(range(k, k + len(self._plain)))

    def _where(self, t: TextCRDT, key: int) -> tuple[int, bool]:
        """(live position of character `key`, visible?)."""
        a, c = key >> _SHIFT, key & _MASK
        r = t.find_run(a, c)
        if r is None:  # pragma: no cover - ids of a view are never forgotten
            raise ValidationError("text mirror lost a character")
        return t.resolve(Cursor(t.actors[a], c)), r.s is not None

    def _map(self, t: TextCRDT, pos: int) -> int:
        """Live position for copy position `pos` (after the character the copy shows before it)."""
        if pos == 0:
            return 0
        at, visible = self._where(t, self._view[pos - 1])
        return at + 1 if visible else at

    def _check(self, pos: int, n: int = 0) -> None:
        size = len(self._view) if self._t is not None else len(self._plain)
        if type(pos) is not int or type(n) is not int or n < 0 or pos < 0 or pos + n > size:
            raise ValidationError(f"text range {pos!r}+{n!r} outside 0..{size}")

    def _text_crdt(self) -> TextCRDT:
        """The live CRDT, making the field a text first (the copy then shows its value)."""
        if self._t is not None and self._live() is self._t:
            return self._t
        if self._t is None:
            self.handle.insert(0, "")   # migrates a plain string (db/text.py: a seed)
            t = self._live()
            assert t is not None
            view = self._seed_view(t)
            if view is None:
                # The text grew from another value (a concurrent `set`): the copy's
                # characters have no ids to map through.
                raise ValidationError("the text changed since it was read: pull it again")
            self._t, self._view = t, view
            return t
        # The text was replaced (a later plain `set`, or the document deleted and re-made):
        # the copy's characters are gone; start over from the live text.
        raise ValidationError("the text was replaced: pull it again")

    # -- editing ---------------------------------------------------------------------------

    @locked
    def splice(self, pos: int, n: int, text: str = "") -> None:
        """Delete `n` code points at copy position `pos`, then insert `text` there."""
        self._check(pos, n)
        check_text(text)   # before the delete: a refused splice changes nothing
        self._pending = None
        t = self._text_crdt()
        view = self._view
        if n:
            spans: list[list[int]] = []
            for key in view[pos:pos + n]:
                at, visible = self._where(t, key)
                if visible:
                    if spans and spans[-1][0] + spans[-1][1] == at:
                        spans[-1][1] += 1
                    else:
                        spans.append([at, 1])
            for at, k in sorted(spans, reverse=True):
                self.handle.delete(at, k)
            del view[pos:pos + n]
        if text:
            live = self._map(t, pos)
            bound = self.handle.editable()       # bound to this device's actor
            me = bound.me
            start = bound.next_ctr[me]
            self.handle.insert(live, text)
            k = me << _SHIFT | start
            view[pos:pos] = range(k, k + len(text))

    def insert(self, pos: int, text: str) -> None:
        self.splice(pos, 0, text)

    def delete(self, pos: int, n: int) -> None:
        self.splice(pos, n, "")

    # -- catching up -----------------------------------------------------------------------

    @locked
    def pull(self, positions: list[int] | None = None) -> tuple[str, list[int], int]:
        """(live text, `positions` of the copy mapped into it, token for `adopt`)."""
        positions = list(positions or [])
        for p in positions:
            self._check(p)
        t = self._live()
        if t is not None and self._t is None:
            view = self._seed_view(t)
            if view is not None:
                self._t, self._view = t, view
        if t is None or t is not self._t:
            mapped = [min(p, len(str(self.handle))) for p in positions]
        else:
            mapped = [self._map(t, p) for p in positions]
        self._token += 1
        text = str(self.handle)
        plain = self._plain_value() if t is None else ("", b"")
        self._pending = (self._token, t, [] if t is None else self._ids(t), *plain)
        return text, mapped, self._token

    @locked
    def adopt(self, token: int) -> bool:
        """Make the text of `pull` number `token` the copy; False if an edit came between."""
        p = self._pending
        if p is None or p[0] != token:
            return False
        self._pending = None
        self._t, self._view, self._plain, self._source = p[1], p[2], p[3], p[4]
        return True

    # -- cursors ---------------------------------------------------------------------------

    @locked
    def cursor(self, pos: int) -> Cursor:
        """A cursor before the character the copy shows at `pos` (its end: the text's end)."""
        self._check(pos)
        t = self._text_crdt()
        if pos == len(self._view):
            return Cursor(None, 0)
        key = self._view[pos]
        return Cursor(t.actors[key >> _SHIFT], key & _MASK)

    @locked
    def copy_length(self) -> int:
        return len(self._view) if self._t is not None else len(self._plain)
