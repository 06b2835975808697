"""Text fields over the worker RPC: the `text*` methods of `Host` (web/ostracon.js TextHandle).

The page keeps its own copy of a text (so reading and typing never wait for the worker) and
sends edits with positions in that copy; each open handle here is a `TextMirror`
(db/textmirror.py) that maps them to the live text through character ids, so edits land where
the user made them even when remote edits arrived in between. Positions on this side are
Unicode code points; web/ostracon.js converts the page's UTF-16 offsets.

Handle ids are strings unique across workers (a random prefix per worker), so a call re-sent to
another tab's worker after a handover never reaches someone else's handle: it raises
NotFoundError, and the page opens a new handle and re-sends its copy's difference.
"""

from __future__ import annotations

import secrets
from typing import Any

from ostracon.core.errors import NotFoundError, ValidationError
from ostracon.core.text import Cursor
from ostracon.db.textmirror import TextMirror

#: Text handles one worker keeps open (each holds one id per character of its copy). A page
#: opens one per visible editor; past this the oldest is closed (the page reopens it on use).
MAX_TEXT_HANDLES = 64


def _ints(v: Any, what: str) -> list[int]:
    if v is None:
        return []
    if type(v) is not list or any(type(x) is not int for x in v):
        raise ValidationError(f"{what} must be an array of integers")
    return v


class TextRpc:
    """Mixed into Host: `self._col(name)` gives a Collection."""

    texts: dict[str, TextMirror]
    _next_text: int
    _text_prefix: str = ""

    def _col(self, name: Any) -> Any:  # pragma: no cover - Host defines it
        raise NotImplementedError

    def _mirror(self, hid: Any) -> TextMirror:
        m = self.texts.get(hid) if type(hid) is str else None
        if m is None:
            raise NotFoundError(f"text handle {hid!r} is not open")
        return m

    @staticmethod
    def _pulled(m: TextMirror, text: str, positions: list[int], token: int) -> dict:
        return {"text": text, "positions": positions, "token": token}

    def rpc_textOpen(self, col: str, id: str, field: str) -> dict:
        """→ {hid, text}: a handle whose copy is the field's text now."""
        m = self._col(col).text(id, field).mirror()
        if not self._text_prefix:
            self._text_prefix = secrets.token_hex(8)
        hid = f"{self._text_prefix}-{self._next_text}"
        self._next_text += 1
        self.texts[hid] = m   # dicts keep insertion order: the first key is the oldest
        while len(self.texts) > MAX_TEXT_HANDLES:
            del self.texts[next(iter(self.texts))]
        return {"hid": hid, "text": m.text}

    def rpc_textClose(self, hid: Any) -> bool:
        return self.texts.pop(hid, None) is not None if type(hid) is str else False

    def rpc_textSplice(self, hid: Any, pos: Any, n: Any, text: Any = "") -> None:
        self._mirror(hid).splice(pos, n, text)

    def rpc_textPull(self, hid: Any, positions: Any = None) -> dict:
        """→ {text, positions, token}: the live text and copy positions mapped into it."""
        m = self._mirror(hid)
        return self._pulled(m, *m.pull(_ints(positions, "positions")))

    def rpc_textAdopt(self, hid: Any, token: Any) -> bool:
        return self._mirror(hid).adopt(token)

    def rpc_textCursor(self, hid: Any, pos: Any) -> dict:
        """→ {actor: hex | null, counter}: a cursor before the copy's character at `pos`."""
        c = self._mirror(hid).cursor(pos)
        return {"actor": None if c.actor is None else c.actor.hex(), "counter": c.counter}

    def rpc_textResolve(self, hid: Any, cursors: Any) -> dict:
        """→ {text, positions, token}: the live text and where each cursor is in it."""
        m = self._mirror(hid)
        if type(cursors) is not list:
            raise ValidationError("cursors must be an array")
        parsed = []
        for c in cursors:
            if type(c) is not dict or type(c.get("counter")) is not int:
                raise ValidationError("not a text cursor")
            actor = c.get("actor")
            if actor is not None and (type(actor) is not str or len(actor) != 64):
                raise ValidationError("not a text cursor")
            try:
                parsed.append(Cursor(None if actor is None else bytes.fromhex(actor), c["counter"]))
            except ValueError:
                raise ValidationError("not a text cursor") from None
        text, _, token = m.pull()
        return self._pulled(m, text, [m.handle.resolve(c) for c in parsed], token)

    def rpc_textBlame(self, hid: Any) -> list:
        return self._mirror(hid).handle.blame()

    def rpc_textCommit(self, hid: Any) -> str | None:
        return self._mirror(hid).handle.commit()
