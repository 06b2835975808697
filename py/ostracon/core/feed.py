"""The change feed: ordered events about visible document changes, with resumable cursors.

Each applied change (local or remote) produces one event with a feed sequence number that
increases by one, so a consumer detects gaps. Events are kept for `retention` entries;
a cursor older than that, or from another feed epoch (another open of the database: the
sequence restarts), raises CursorError and the consumer must rescan (a rebuild).

Subscribers get a bounded buffer. When it overflows, the buffered events are discarded and
the subscriber's next poll returns a single overflow marker (`event.kind == "overflow"`)
telling it to rebuild from a scan: never a silent drop.

Event payload: an event can carry the document's visible fields at that version (`payload`,
on by default; `payload=False` makes the feed keep none, for consumers that re-read by
`path`). A payload is capped: when the canonical encoding of the fields is larger than
`payload_max_bytes` (default 32 KiB, PAYLOAD_MAX_BYTES), `to_dict()` leaves it out and sets
`payload_truncated` — the consumer reads the document itself. `path` is `collection/id`.

DataHash (`data_hash`): SHA-256, hex, over the canonical msgpack encoding of the fields
(core/encoding.py: sorted keys, shortest ints, float64) — the same bytes in every runtime,
so two replicas with equal fields report equal hashes. SHA-256 rather than a fast
non-cryptographic hash such as xxhash64: hashes are compared across replicas that may be
hostile, where a 64-bit non-cryptographic hash can be collided on purpose; hashlib's SHA-256
is native in CPython and Pyodide alike (no extra dependency), and it is computed only when
asked for. An application needing another function computes it from `fields`.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from .encoding import encode_canonical
from .errors import CursorError, ValidationError
from .lexical import parse_ascii_int
from .limits import check_callable_option, check_int_option

#: Events kept for cursor resumption. 10k covers a long offline burst of a busy app while
#: bounding memory to a few MB; older cursors get CursorError (rescan).
FEED_RETENTION = 10_000
#: Largest retention accepted: at a few hundred bytes per event, 1M events is already a
#: few hundred MB, more than a browser tab can spare.
MAX_FEED_RETENTION = 1_000_000
#: Default subscriber buffer (seed requirement): small, so a stuck consumer is noticed fast.
SUBSCRIBER_BUFFER = 10
#: Largest event payload (canonical encoding of the fields) `to_dict()` carries: 32 KiB
#: keeps an event small enough to post between threads/tabs for every change; larger
#: documents are flagged `payload_truncated` and read by path.
PAYLOAD_MAX_BYTES = 32 * 1024


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
    payload_max_bytes: int = field(default=PAYLOAD_MAX_BYTES, repr=False, compare=False)

    @property
    def path(self) -> str:
        """`collection/id` (the document's full path)."""
        return f"{self.collection}/{self.id}" if self.kind == "change" else ""

    @property
    def payload(self) -> Any:
        """The fields at this event when the feed carries payloads and their canonical
        encoding is at most `payload_max_bytes`; None otherwise (see `payload_truncated`)."""
        if self.fields is None or self.kind != "change":
            return None
        if len(encode_canonical(self.fields)) > self.payload_max_bytes:
            return None
        return self.fields

    @property
    def payload_truncated(self) -> bool:
        """True when the feed carries payloads but this one exceeded the cap."""
        return (self.fields is not None and self.kind == "change"
                and len(encode_canonical(self.fields)) > self.payload_max_bytes)

    @property
    def data_hash(self) -> str:
        """The DataHash (module docstring): SHA-256 (hex) of the canonical encoding of the
        document's fields at this event; "" for an overflow marker or a feed without
        payloads. Computed on demand: the fields of a version are never mutated."""
        if self.kind != "change" or self.fields is None:
            return ""
        return hashlib.sha256(encode_canonical(self.fields)).hexdigest()

    def to_dict(self) -> dict:
        """The event as plain values: metadata, `path`, `data_hash`, and `payload` (the
        fields, or None when the feed has no payloads or this one was cut) with
        `payload_truncated`."""
        if self.fields is None or self.kind != "change":
            payload, cut, digest = None, False, ""
        else:
            data = encode_canonical(self.fields)
            cut = len(data) > self.payload_max_bytes
            payload = None if cut else self.fields
            digest = hashlib.sha256(data).hexdigest()
        return {"seq": self.seq, "collection": self.collection, "id": self.id,
                "path": self.path, "version": self.version, "deleted": self.deleted,
                "created": self.created, "updated": self.updated, "data_hash": digest,
                "kind": self.kind, "cursor": self.cursor, "payload": payload,
                "payload_truncated": cut, "violations": [dict(v) for v in self.violations]}


class Subscription:
    """A bounded queue of events for one consumer (poll it, or give a callback).

    `poll` and `close` may run on any thread while the feed publishes on another: they
    hold the feed's `guard` (the lock the publisher holds), so an event is either returned
    by one poll or kept for the next, never lost or returned twice."""

    def __init__(self, feed: ChangeFeed, collection: str | None, buffer: int,
                 callback: Callable[[ChangeEvent], None] | None) -> None:
        check_int_option("subscriber buffer", buffer, 1, MAX_FEED_RETENTION)
        check_callable_option("subscriber callback", callback)
        if collection is not None and type(collection) is not str:
            raise ValidationError(f"a subscription's collection must be a str or None, "
                                  f"got {type(collection).__name__}")
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
        with self._feed.guard:
            return self._take()

    def _take(self) -> list[ChangeEvent]:
        if self.overflowed:
            self.overflowed = False
            f = self._feed
            return [ChangeEvent(self._overflow_seq, self.collection or "", "", 0, False, 0, 0, None,
                                kind="overflow", cursor=f.cursor_for(f.last_seq))]
        out = list(self._queue)
        self._queue.clear()
        return out

    def close(self) -> None:
        with self._feed.guard:
            self.closed = True
            self._feed.unsubscribe(self)


class ChangeFeed:
    """`payload`: whether events keep the document's fields; `payload_max_bytes`: the cap
    on a payload's canonical encoding (module docstring). `guard`: the (re-entrant) lock
    the caller holds while it publishes; subscriptions take it to poll and close from other
    threads (None: a single-threaded feed; the core never creates a lock itself)."""

    def __init__(self, epoch: str, retention: int = FEED_RETENTION, *, payload: bool = True,
                 payload_max_bytes: int = PAYLOAD_MAX_BYTES,
                 guard: AbstractContextManager[Any] | None = None) -> None:
        if type(payload_max_bytes) is not int or payload_max_bytes < 0:
            raise ValidationError("payload_max_bytes must be an int >= 0")
        self.guard: AbstractContextManager[Any] = guard if guard is not None else nullcontext()
        self.payload = bool(payload)
        self.payload_max_bytes = payload_max_bytes
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
                         fields if self.payload else None, cursor=f"{self.epoch}.{self.last_seq}",
                         violations=violations, payload_max_bytes=self.payload_max_bytes)
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
        cursor None: from the oldest event still retained (at any feed length). `limit`: at
        most this many events (an int >= 1, or None for all); ValidationError otherwise, as for
        a `collection` that is not a str."""
        if limit is not None:
            check_int_option("limit", limit, 1)
        if collection is not None and type(collection) is not str:
            raise ValidationError(f"collection must be a str, got {type(collection).__name__}")
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
