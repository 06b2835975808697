"""The change feed: ordered events about visible document changes, with resumable cursors.

Each applied change (local or remote) produces one event with a feed sequence number that
increases by one, so a consumer detects gaps. Events are kept for `retention` entries;
a cursor older than that, or from another feed epoch (another open of the database: the
sequence restarts), raises CursorError and the consumer must rescan (a rebuild).

Subscribers get a bounded buffer. When it overflows, the buffered events are discarded and
the subscriber's next poll returns a single overflow marker (`event.kind == "overflow"`)
telling it to rebuild from a scan: never a silent drop.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .encoding import encode_canonical
from .errors import CursorError, ValidationError
from .lexical import parse_ascii_int
from .limits import check_int_option

#: Events kept for cursor resumption. 10k covers a long offline burst of a busy app while
#: bounding memory to a few MB; older cursors get CursorError (rescan).
FEED_RETENTION = 10_000
#: Largest retention accepted: at a few hundred bytes per event, 1M events is already a
#: few hundred MB, more than a browser tab can spare.
MAX_FEED_RETENTION = 1_000_000
#: Default subscriber buffer (seed requirement): small, so a stuck consumer is noticed fast.
SUBSCRIBER_BUFFER = 10


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    seq: int
    collection: str
    id: str
    version: int
    deleted: bool
    created: int
    updated: int
    fields: Any = field(repr=False, compare=False)  # the (immutable) visible fields then
    kind: str = "change"   # "change" or "overflow"
    cursor: str = ""
    #: Rules the merged document breaks ({"rule": "schema" | "unique", "field", "error"}),
    #: reported when a merge made it so: local writes are refused instead (docs/MERGE.md).
    violations: tuple = field(default=(), compare=False)

    @property
    def data_hash(self) -> str:
        """sha256 (hex) of the canonical encoding of the document's fields at this event.

        Computed on demand: the fields dict of a version is never mutated afterwards."""
        if self.kind != "change":
            return ""
        return hashlib.sha256(encode_canonical(self.fields)).hexdigest()

    def to_dict(self) -> dict:
        return {"seq": self.seq, "collection": self.collection, "id": self.id,
                "version": self.version, "deleted": self.deleted, "created": self.created,
                "updated": self.updated, "data_hash": self.data_hash, "kind": self.kind,
                "cursor": self.cursor, "violations": [dict(v) for v in self.violations]}


class Subscription:
    """A bounded queue of events for one consumer (poll it, or give a callback)."""

    def __init__(self, feed: ChangeFeed, collection: str | None, buffer: int,
                 callback: Callable[[ChangeEvent], None] | None) -> None:
        check_int_option("subscriber buffer", buffer, 1, MAX_FEED_RETENTION)
        self._feed = feed
        self.collection = collection
        self.buffer = buffer
        self.callback = callback
        self._queue: deque[ChangeEvent] = deque()
        self.overflowed = False
        self.overflows = 0
        self.closed = False

    def deliver(self, ev: ChangeEvent) -> None:
        """Called by the feed for every published event (filtered by collection here)."""
        if self.collection is not None and ev.collection != self.collection:
            return
        if self.callback is not None:
            self.callback(ev)
            return
        if self.overflowed:
            return
        if len(self._queue) >= self.buffer:
            self._queue.clear()
            self.overflowed = True
            self.overflows += 1
            self._overflow_seq = ev.seq
            return
        self._queue.append(ev)

    def poll(self) -> list[ChangeEvent]:
        """Buffered events, or [overflow marker] after an overflow (then resumes)."""
        if self.overflowed:
            self.overflowed = False
            f = self._feed
            return [ChangeEvent(self._overflow_seq, self.collection or "", "", 0, False, 0, 0, None,
                                kind="overflow", cursor=f.cursor_for(f.last_seq))]
        out = list(self._queue)
        self._queue.clear()
        return out

    def close(self) -> None:
        self.closed = True
        self._feed.unsubscribe(self)


class ChangeFeed:
    def __init__(self, epoch: str, retention: int = FEED_RETENTION) -> None:
        self.epoch = epoch
        self.retention = check_int_option("feed_retention", retention, 1, MAX_FEED_RETENTION)
        self.last_seq = 0
        self._events: deque[ChangeEvent] = deque(maxlen=retention)
        self._subs: list[Subscription] = []  # a list: callback order must not depend on hash()

    def cursor_for(self, seq: int) -> str:
        return f"{self.epoch}.{seq}"

    def publish(self, collection: str, doc_id: str, version: int, deleted: bool,
                created: int, updated: int, fields: dict, violations: tuple = ()) -> ChangeEvent:
        """`fields` must never be mutated afterwards (DocState builds a new dict per version)."""
        self.last_seq += 1
        ev = ChangeEvent(self.last_seq, collection, doc_id, version, deleted, created, updated,
                         fields, cursor=f"{self.epoch}.{self.last_seq}", violations=violations)
        self._events.append(ev)
        # A callback that raises must not make the subscribers after it miss the event
        # (a silent drop): offer it to every subscriber, then re-raise the first error.
        error: BaseException | None = None
        for sub in list(self._subs):
            try:
                sub.deliver(ev)
            except Exception as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error
        return ev

    def _parse(self, cursor: str | None) -> int:
        if cursor is None or cursor == "":
            return 0
        if type(cursor) is not str or "." not in cursor:
            raise CursorError(f"malformed cursor {cursor!r:.60}")
        epoch, _, seq = cursor.rpartition(".")
        if epoch != self.epoch:
            raise CursorError("cursor is from another session of this database; rescan")
        try:
            n = parse_ascii_int(seq)  # int() would take non-ASCII digits in one runtime only
        except ValidationError:
            raise CursorError(f"malformed cursor {cursor!r:.60}") from None
        if n < 0 or n > self.last_seq:
            raise CursorError(f"cursor {cursor!r} is ahead of the feed")
        return n

    def since(self, cursor: str | None = None, collection: str | None = None,
              limit: int | None = None) -> tuple[list[ChangeEvent], str]:
        """Events after `cursor` (optionally one collection) and the cursor to resume from.
        cursor None: from the oldest event still retained (at any feed length)."""
        first_kept = self._events[0].seq if self._events else self.last_seq + 1
        after = first_kept - 1 if cursor is None else self._parse(cursor)
        if after + 1 < first_kept and after < self.last_seq:
            raise CursorError(f"events after {after} are no longer retained (oldest kept is "
                              f"{first_kept}); rescan and resume from the current cursor")
        out = []
        last = after
        start = max(0, after + 1 - first_kept)  # events are contiguous: index by sequence
        for i in range(start, len(self._events)):
            ev = self._events[i]
            last = ev.seq
            if collection is None or ev.collection == collection:
                out.append(ev)
                if limit is not None and len(out) >= limit:
                    break
        if limit is None or len(out) < limit:
            last = self.last_seq
        return out, self.cursor_for(last)

    def subscribe(self, collection: str | None = None, buffer: int = SUBSCRIBER_BUFFER,
                  callback: Callable[[ChangeEvent], None] | None = None) -> Subscription:
        sub = Subscription(self, collection, buffer, callback)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub` (Subscription.close calls this). Idempotent."""
        if sub in self._subs:
            self._subs.remove(sub)
