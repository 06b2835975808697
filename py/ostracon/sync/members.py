"""The sync client's side of space membership: carry the member log through the room, keep it
in the database's storage meta, and tell the client when the space moved to a new key epoch.

A member-log message is one encrypted frame like any sync message, but its payload starts
with ``0xC1 0x01`` (0xC1 is never used by msgpack, so it cannot be mistaken for a sync-session
message) followed by the canonical msgpack list of the log's entries ``[[entry, sig], …]``.
It is published durably (stored in the room's mailbox) so a device that joins later, or was
offline during a rotation, finds it when it replays the room.

A device publishes its log when the room has not shown it that log yet in this connection
(the digest of the log it last sent, or last received whole, differs): after catching up,
after a local change (invite, remove, role, grant) and after merging a log that taught it new
entries but lacked some of its own. A payload that teaches nothing (junk, a replay, an older
log) never makes it publish, and publishes caused by received logs are rate-limited
(`REPUBLISH_BURST`, `REPUBLISH_INTERVAL_S`); a local change goes out at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..core.encoding import decode, encode
from ..core.errors import OstraconError, WrongKeyError
from .peer import TokenBucket

log = logging.getLogger("ostracon.sync")

MEMBERS_MAGIC = b"\xc1\x01"
META_BINDING = "space/v1/binding"
META_LOG_PREFIX = "space/v1/members/"
META_TOLD_PREFIX = "space/v1/told/"
#: Republishes that a received log caused (not a local change) are a token bucket: up to
#: REPUBLISH_BURST at once (a join, then the grant it needs, answered without delay), then
#: one per REPUBLISH_INTERVAL_S. Every member republishes a log it learnt from, durably, so a
#: member signing a stream of small void entries must not make each device store its whole
#: log (up to MAX_LOG_ENTRIES entries) in the mailbox per frame.
REPUBLISH_BURST = 3
REPUBLISH_INTERVAL_S = 10.0


def save_log(db: Any, space: Any) -> None:
    """Keep `space`'s member log in the database's meta (where MemberSync reads it)."""
    if space.members is None:
        return
    db.storage.set_meta(META_LOG_PREFIX + bytes(space.binding).hex(), encode(space.members.export()))


def load_log(db: Any, space: Any) -> None:
    """Merge the member log kept in the database's meta into `space` (it holds the entries
    since the space state was saved: invites, joins, rotations) and refresh its keys."""
    if space.members is None:
        return
    try:
        raw = db.storage.get_meta(META_LOG_PREFIX + bytes(space.binding).hex())
    except OstraconError:
        raw = None
    if raw is not None:
        try:
            space.members.merge(decode(bytes(raw)))
        except OstraconError:
            log.warning("ignoring a damaged stored member log")
    space.refresh()


def is_members_payload(payload: bytes) -> bool:
    return payload[:2] == MEMBERS_MAGIC


def check_binding(db: Any, space: Any, *, rebind_from: Any = None) -> None:
    """Bind the database to `space` on first use; a database bound to another space refuses
    it with WrongKeyError (a wrong invite or passphrase never mixes two spaces' data). A
    migration names the space it leaves (`rebind_from`): the move is explicit, never silent."""
    try:
        bound = db.storage.get_meta(META_BINDING)
    except OstraconError:
        return
    mine = bytes(space.binding)
    if bound is None or bytes(bound) == mine:
        if bound is None:
            db.storage.set_meta(META_BINDING, mine)
        return
    if rebind_from is not None and bytes(bound) == bytes(rebind_from.binding):
        db.storage.set_meta(META_BINDING, mine)
        return
    raise WrongKeyError("this database belongs to another space: wrong invite or passphrase "
                        "(to move it to a new space, migrate explicitly)")


class MemberSync:
    """Member-log bookkeeping for one SyncClient (no-op for open spaces)."""

    def __init__(self, db: Any, space: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.space = space
        self.log = space.members
        self._clock = clock
        self._room_digest: bytes | None = None  # the log the current room has shown or got from us
        self._merged_digest: bytes | None = None  # our log right after the last merge that taught us
        self._republish = TokenBucket(1 / REPUBLISH_INTERVAL_S, REPUBLISH_BURST, clock())
        if self.log is not None:
            self._meta_key = META_LOG_PREFIX + bytes(space.binding).hex()
            load_log(db, space)

    @property
    def active(self) -> bool:
        return self.log is not None

    def new_room(self) -> None:
        self._room_digest = None

    def room_has_log(self) -> bool:
        """True once the current room has shown us, or got from us, exactly our log."""
        return self.log is not None and self._room_digest == self.log.digest()

    def told(self, key_id: bytes) -> bytes | None:
        """The epoch whose rotation was last announced in the room of `key_id`'s epoch."""
        try:
            raw = self.db.storage.get_meta(META_TOLD_PREFIX + key_id.hex())
        except OstraconError:
            return None
        return None if raw is None else bytes(raw)

    def mark_told(self, key_id: bytes, current: bytes) -> None:
        try:
            self.db.storage.set_meta(META_TOLD_PREFIX + key_id.hex(), current)
        except OstraconError:
            log.warning("could not record a rotation announcement")

    def _save(self) -> None:
        try:
            self.db.storage.set_meta(self._meta_key, encode(self.log.export()))
        except OstraconError:
            log.warning("could not store the member log")

    def receive(self, payload: bytes) -> bool:
        """Merge a received log. True when this device moved to another key epoch. Entries it
        already holds cost a hash each, so a log received again is nearly free."""
        if self.log is None:
            return False
        try:
            wires = decode(payload[len(MEMBERS_MAGIC):])
        except OstraconError:
            return False
        before = len(self.log.entries)
        seen: set[bytes] = set()
        new = self.log.merge(wires, seen)
        if new:
            self._save()
        if seen >= self.log.ids():
            self._room_digest = self.log.digest()  # the room has shown us all of ours
        elif len(self.log.entries) > before:
            self._merged_digest = self.log.digest()  # taught us something, lacks some of ours
        moved = self.space.refresh()
        grant = self.space.grant_missing()
        if grant is not None:
            self._save()
        return moved

    def outgoing(self) -> bytes | None:
        """The log to publish, or None when the room already has exactly it, or when the only
        news came from received logs and the republish budget is spent."""
        if self.log is None:
            return None
        mine = self.log.digest()
        if mine == self._room_digest:
            return None
        if mine == self._merged_digest and not self._republish.take(1, self._clock()):
            return None  # only what a received log taught us, and the republish budget is spent
        self._room_digest = mine
        self._save()
        return MEMBERS_MAGIC + encode(self.log.export())
