"""Space membership: a signed member log with roles, invites and key epochs (docs/CRYPTO.md
"Membership").

The log is a small DAG of signed entries. Each entry is a canonical msgpack map

    {"v": 1, "k": kind, "a": author actor id (core/actors.py), "p": [parent entry ids, sorted],
     "s": space id, ...}

signed by its author's identity key over ``"ostracon/member/v1\\0" ‖ encoded map``; its id is
SHA-256 of the same bytes. The first entry ("create") has no parents and no "s"; the space id
is the first 16 bytes of its id, so nobody can forge a second root for a space.

Kinds (fields; who may write it; effect):

- create (x: author's X25519 key, c: key id of the first epoch, n: 16 random bytes; anyone, it
  defines the space): the author is admin; epoch 0.
- invite (i: invite Ed25519 key, ix: invite X25519 key, r: role; admin): one device may redeem it.
- join (i, x: device X25519 key, is: the invite key's signature; the device holding the
  invite): the author becomes a member with the invite's role; the invite is used up.
- role (m: member, r: role, u: highest seq of m that stays valid; admin): role change.
- remove (m: member or invite key, u; admin): member removed, or invite revoked.
- rotate (c: key id of the new epoch, w: [[recipient, wrapped key], ...]; admin): a new epoch,
  its key wrapped to every remaining member and open invite.
- grant (c: key id of an epoch, w; admin): wraps an existing epoch key to members that lack
  it (they joined concurrently with a rotation).

Merge rule (concurrent admin actions): the state is recomputed from the whole log in one
deterministic order — parents before children, concurrent entries by ascending entry id — and
each entry is checked against the state the entries before it produced. An entry whose author
is no longer allowed at that point (e.g. two admins removing each other: the entry with the
smaller id wins and the other has no effect), or that repeats a used invite, has no effect
but stays in the log, so every replica that holds the same entries computes the same state.

A new entry names as parents the newest entries that had an effect (void heads are skipped for
their nearest effective ancestors), at most MAX_PARENTS. Entries whose parents are missing wait
apart (MAX_WAITING_ENTRIES, MAX_WAITING_BYTES) and never take log space; the last ADMIN_RESERVE
slots of MAX_LOG_ENTRIES take only entries that can have an effect, so whatever members or
outsiders sign, an admin can still remove them (docs/CRYPTO.md "Membership").

Writes: an actor whose role is admin or writer may write; otherwise only its blocks with a
sequence number <= the highest ``u`` any role change or removal recorded for it (what it wrote
while it still could). Readers' and removed members' later blocks are refused by every replica.

Key wrapping (per recipient): an ephemeral X25519 key pair E, ``shared = X25519(E, R)``,
``k = HKDF-SHA256(shared, salt = E.pub ‖ R, info = "ostracon/key-wrap/v1", 32)``,
``wrapped = E.pub ‖ AES-256-GCM(k, nonce = 0^96, epoch key, aad = space id ‖ key id)`` (80 bytes;
the nonce is fixed because every k is used once). A device's X25519 key is derived from its
identity seed: ``HKDF-SHA256(seed, "", "ostracon/x25519/v1", 32)``.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from dataclasses import dataclass, field
from typing import Any

from ..core.actors import is_actor
from ..core.encoding import decode, encode
from ..core.errors import CryptoError, MalformedMessageError, MemberLogFullError, ValidationError
from .base import CryptoBackend

ROLES = ("admin", "writer", "reader")
WRITE_ROLES = ("admin", "writer")
KINDS = ("create", "invite", "join", "role", "remove", "rotate", "grant")
ADMIN_KINDS = ("invite", "role", "remove", "rotate", "grant")

ENTRY_LABEL = b"ostracon/member/v1\x00"
JOIN_LABEL = b"ostracon/invite-join/v1\x00"
WRAP_INFO = b"ostracon/key-wrap/v1"
X25519_INFO = b"ostracon/x25519/v1"
SPACE_ID_SIZE = 16
KEY_ID_SIZE = 16
WRAPPED_SIZE = 32 + 32 + 16
ENTRY_VERSION = 1

#: Entries one space's log may hold. Every merge re-reads the whole log (sort + one signature
#: check per new entry); 4096 admin actions are far beyond a household or team space and keep a
#: full recomputation in the tens of milliseconds.
MAX_LOG_ENTRIES = 4096
#: The last slots of MAX_LOG_ENTRIES that only an entry written by a current admin may take.
#: Anyone who can publish in the room can sign entries that have no effect (void) but still
#: settle in the log; a log they filled must still let an admin remove them (a removal is two
#: entries, remove + rotate), so 256 slots leave room for many admin actions after a flood.
ADMIN_RESERVE = 256
#: Entries kept while a parent is missing (a device's own join before the invite reached it,
#: an entry that overtook its parents). Honest logs travel parents first, so few ever wait;
#: entries whose parents never come cost nothing to sign, so waiting ones are bounded on their
#: own, never count against MAX_LOG_ENTRIES, and a full waiting set refuses further ones.
MAX_WAITING_ENTRIES = 32
#: Bytes of all waiting entries together: a join is ~300 bytes, a waiting rotation up to
#: MAX_ENTRY_BYTES; waiting entries are stored and re-published with the log, so they stay small.
MAX_WAITING_BYTES = 128 * 1024
#: Ids of received entries refused (malformed, bad signature, no room) remembered so that the
#: same entries received again cost a hash, not a decode and a signature check; forgotten when
#: an entry settles (one that waited for room or a parent may fit then).
MAX_REFUSED_IDS = MAX_LOG_ENTRIES
#: Largest encoded entry: a rotation wraps 80 bytes per recipient, so 64 KiB covers ~700
#: members and open invites (the relay's room limit is 256 connections).
MAX_ENTRY_BYTES = 64 * 1024
#: Parents per entry (the log's heads when it was written); more means a log that forked
#: pathologically, or a forgery that tries to make merges expensive.
MAX_PARENTS = 64


def x25519_private(seed: bytes, crypto: CryptoBackend) -> bytes:
    """The X25519 private key that belongs to an identity (or invite) seed."""
    return crypto.hkdf_sha256(seed, b"", X25519_INFO, 32)


def wrap_key(crypto: CryptoBackend, recipient_x: bytes, key: bytes, aad: bytes) -> bytes:
    eph = crypto.random_bytes(32)
    eph_pub = crypto.x25519_public_key(eph)
    shared = crypto.x25519(eph, recipient_x)
    k = crypto.hkdf_sha256(shared, eph_pub + recipient_x, WRAP_INFO, 32)
    return eph_pub + crypto.aes_gcm_encrypt(k, bytes(12), key, aad)


def unwrap_key(crypto: CryptoBackend, private_x: bytes, wrapped: bytes, aad: bytes) -> bytes | None:
    """The wrapped key, or None if it was not wrapped to this private key (or was damaged)."""
    if not isinstance(wrapped, bytes) or len(wrapped) != WRAPPED_SIZE:
        return None
    eph_pub = wrapped[:32]
    try:
        shared = crypto.x25519(private_x, eph_pub)
        k = crypto.hkdf_sha256(shared, eph_pub + crypto.x25519_public_key(private_x), WRAP_INFO, 32)
        return crypto.aes_gcm_decrypt(k, bytes(12), wrapped[32:], aad)
    except CryptoError:
        return None


@dataclass(frozen=True)
class Entry:
    """One verified log entry. ``raw`` is the signed canonical map, ``sig`` its signature."""

    id: bytes
    raw: bytes
    sig: bytes
    body: dict = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        return self.body["k"]

    @property
    def author(self) -> bytes:
        return self.body["a"]

    @property
    def parents(self) -> list[bytes]:
        return self.body["p"]

    def wire(self) -> list:
        return [self.raw, self.sig]


def _bad(why: str) -> MalformedMessageError:
    return MalformedMessageError(f"member log entry: {why}")


def _actor(body: dict, key: str) -> bytes:
    """A device's actor id (Ed25519 or P-256, core/actors.py)."""
    v = body.get(key)
    if not isinstance(v, bytes) or not is_actor(v):
        raise _bad(f"{key!r} must be an actor id (32-byte Ed25519 key or 35-byte P-256 id)")
    return v


def _b(body: dict, key: str, size: int | None = None) -> bytes:
    v = body.get(key)
    if not isinstance(v, bytes) or (size is not None and len(v) != size):
        raise _bad(f"{key!r} must be {size or 'some'} bytes")
    return v


def parse_entry(wire: Any, crypto: CryptoBackend) -> Entry:
    """Check shape and signature of one wire entry ``[raw, sig]``; MalformedMessageError if bad."""
    entry = _unverified(wire)
    _verify(entry, crypto)
    return entry


def wire_id(wire: Any) -> bytes | None:
    """The id of a wire entry (None if it is not ``[bytes, bytes]``), without checking it: a
    log can skip what it already holds before spending a decode and a signature check."""
    if not isinstance(wire, (list, tuple)) or len(wire) != 2 or not isinstance(wire[0], bytes):
        return None
    return hashlib.sha256(ENTRY_LABEL + wire[0]).digest()


def _verify(entry: Entry, crypto: CryptoBackend) -> None:
    if not crypto.verify_actor(entry.author, ENTRY_LABEL + entry.raw, entry.sig):
        raise _bad("signature does not verify")


def _unverified(wire: Any) -> Entry:
    """Every check of parse_entry except the signature."""
    if not isinstance(wire, (list, tuple)) or len(wire) != 2:
        raise _bad("must be [bytes, signature]")
    raw, sig = wire
    if not isinstance(raw, bytes) or not isinstance(sig, bytes) or len(sig) != 64:
        raise _bad("must be [bytes, 64-byte signature]")
    return _checked(raw, sig)


def _checked(raw: bytes, sig: bytes) -> Entry:
    if len(raw) > MAX_ENTRY_BYTES:
        raise _bad(f"larger than {MAX_ENTRY_BYTES} bytes")
    try:
        body = decode(raw)
    except Exception as exc:
        raise _bad("not canonical msgpack") from exc
    if not isinstance(body, dict) or body.get("v") != ENTRY_VERSION or body.get("k") not in KINDS:
        raise _bad("unknown version or kind")
    _actor(body, "a")
    parents = body.get("p")
    if not isinstance(parents, list) or len(parents) > MAX_PARENTS or \
            any(not isinstance(x, bytes) or len(x) != 32 for x in parents) or parents != sorted(set(parents)):
        raise _bad("parents must be a sorted list of distinct 32-byte ids")
    if (body["k"] == "create") != (not parents):
        raise _bad("exactly the create entry has no parents")
    kind = body["k"]
    if kind == "create":
        _b(body, "x", 32), _b(body, "c", KEY_ID_SIZE), _b(body, "n", 16)
    else:
        _b(body, "s", SPACE_ID_SIZE)
    if kind == "invite":
        _b(body, "i", 32), _b(body, "ix", 32)
        if body.get("r") not in ROLES:
            raise _bad("unknown role")
    elif kind == "join":
        _b(body, "i", 32), _b(body, "x", 32), _b(body, "is", 64)
    elif kind in ("role", "remove"):
        _actor(body, "m")
        u = body.get("u")
        if type(u) is not int or u < 0:
            raise _bad("'u' must be a non-negative int")
        if kind == "role" and body.get("r") not in ROLES:
            raise _bad("unknown role")
    elif kind in ("rotate", "grant"):
        _b(body, "c", KEY_ID_SIZE)
        w = body.get("w")
        if not isinstance(w, list) or any(
                not isinstance(x, list) or len(x) != 2 or not is_actor(x[0])
                or not isinstance(x[1], bytes) or len(x[1]) != WRAPPED_SIZE for x in w):
            raise _bad("'w' must be a list of [recipient actor id, wrapped key (80)]")
    return Entry(hashlib.sha256(ENTRY_LABEL + raw).digest(), raw, sig, body)


def sign_entry(body: dict, sign: Any) -> Entry:
    """Encode and sign a new entry (``sign(message) -> signature``, e.g. Identity.sign). It
    passes the checks every receiver makes (size, parents, fields) or ValidationError: an
    entry this device writes is never one that only its own replica accepts."""
    raw = encode(body)
    try:
        _checked(raw, bytes(64))
    except MalformedMessageError as exc:
        raise ValidationError(f"this entry would be refused by every other replica: {exc}") from exc
    sig = sign(ENTRY_LABEL + raw)
    return Entry(hashlib.sha256(ENTRY_LABEL + raw).digest(), raw, sig, decode(raw))


@dataclass
class Invite:
    role: str
    x: bytes
    used_by: bytes | None = None
    revoked: bool = False


@dataclass
class Epoch:
    key_id: bytes
    entry: bytes
    wraps: dict[bytes, bytes] = field(default_factory=dict)  # recipient (actor / invite key) → wrapped


@dataclass
class MemberState:
    """The result of replaying the log: roles, keys to wrap to, epochs, write limits."""

    space_id: bytes
    roles: dict[bytes, str] = field(default_factory=dict)
    x25519: dict[bytes, bytes] = field(default_factory=dict)
    invites: dict[bytes, Invite] = field(default_factory=dict)
    epochs: list[Epoch] = field(default_factory=list)
    cuts: dict[bytes, int] = field(default_factory=dict)
    removed: set[bytes] = field(default_factory=set)
    void: list[tuple[bytes, str]] = field(default_factory=list)  # (entry id, why it had no effect)

    def role(self, actor: bytes) -> str | None:
        return self.roles.get(actor)

    def write_limit(self, actor: bytes) -> int | None:
        """None: may write anything; else the highest sequence number of its that is valid."""
        if self.roles.get(actor) in WRITE_ROLES:
            return None
        return self.cuts.get(actor, 0)

    def recipients(self) -> dict[bytes, bytes]:
        """recipient id → X25519 key of every member and open invite (who gets a new epoch)."""
        out = {a: self.x25519[a] for a in self.roles}
        for ipub, inv in self.invites.items():
            if inv.used_by is None and not inv.revoked:
                out[ipub] = inv.x
        return out


class MemberLog:
    """The entries of one space's log; ``state`` replays them (cached until the next change)."""

    def __init__(self, crypto: CryptoBackend, space_id: bytes | None = None) -> None:
        self.crypto = crypto
        self.space_id = space_id
        self.entries: dict[bytes, Entry] = {}
        self._waiting: dict[bytes, Entry] = {}  # entries whose parents are not here yet
        self._waiting_bytes = 0
        self._wanted: dict[bytes, list[bytes]] = {}  # missing parent → waiting entries that name it
        self._referenced: set[bytes] = set()  # every parent some settled entry names
        self._state: MemberState | None = None
        self._heads: list[bytes] | None = None
        self._digest: bytes | None = None
        self._refused: set[bytes] = set()

    # --- growing the log -----------------------------------------------------------------

    def add(self, entry: Entry) -> bool:
        """Add one verified entry; True if it is new. Entries of another space are refused;
        MemberLogFullError when it has no room (see MAX_LOG_ENTRIES, ADMIN_RESERVE,
        MAX_WAITING_ENTRIES)."""
        return self._add(entry, None)

    def _add(self, entry: Entry, st: MemberState | None) -> bool:
        if entry.id in self.entries or entry.id in self._waiting or not self._admits(entry, st):
            return False
        if entry.kind == "create":
            self.space_id = entry.id[:SPACE_ID_SIZE]
        if self._ready(entry):
            self._settle(entry)
        else:
            self._waiting[entry.id] = entry
            self._waiting_bytes += len(entry.raw)
            for p in entry.parents:
                if p not in self.entries:
                    self._wanted.setdefault(p, []).append(entry.id)
        self._changed()
        return True

    def merge(self, wires: Any, seen: set[bytes] | None = None) -> int:
        """Add entries received from a peer ([raw, sig] each); bad ones and those without room
        are skipped. Returns how many were new. Entries already held cost one hash each (no
        decode, no signature check); `seen` collects the ids of every well-formed wire."""
        if not isinstance(wires, list):
            return 0
        new = 0
        st = None
        for w in wires[:MAX_LOG_ENTRIES + MAX_WAITING_ENTRIES]:
            eid = wire_id(w)
            if eid is None:
                continue
            if seen is not None:
                seen.add(eid)
            if eid in self.entries or eid in self._waiting or eid in self._refused:
                continue
            try:
                entry = _unverified(w)
                if st is None and len(self.entries) >= MAX_LOG_ENTRIES - ADMIN_RESERVE:
                    st = self.state  # once per merge, not once per entry
                if self._admits(entry, st):
                    _verify(entry, self.crypto)
                    new += self._add(entry, st)
                    if st is not None and _effective_now(entry, st):
                        st = None  # it may open an invite or name an admin: look again (rare)
                    continue
            except (MalformedMessageError, ValidationError):
                pass
            if len(self._refused) < MAX_REFUSED_IDS:
                self._refused.add(eid)
        return new

    def _admits(self, entry: Entry, st: MemberState | None = None) -> bool:
        """False for another space's entry; MemberLogFullError when there is no room for it."""
        if entry.kind == "create":
            if self.space_id is not None and entry.id[:SPACE_ID_SIZE] != self.space_id:
                return False
            if self.entries:
                return False  # a space has one root
        elif self.space_id is not None and entry.body["s"] != self.space_id:
            return False
        if not self._ready(entry):
            if len(self._waiting) >= MAX_WAITING_ENTRIES or \
                    self._waiting_bytes + len(entry.raw) > MAX_WAITING_BYTES:
                raise MemberLogFullError(f"member log: {MAX_WAITING_ENTRIES} entries or "
                                         f"{MAX_WAITING_BYTES} bytes already wait for parents")
            return True
        self._check_room(entry, st)
        return True

    def _check_room(self, entry: Entry, st: MemberState | None = None) -> None:
        n = len(self.entries)
        if n >= MAX_LOG_ENTRIES:
            raise MemberLogFullError(f"member log is full ({MAX_LOG_ENTRIES} entries)")
        if n >= MAX_LOG_ENTRIES - ADMIN_RESERVE and not _effective_now(entry, st or self.state):
            raise MemberLogFullError(f"member log: the last {ADMIN_RESERVE} of {MAX_LOG_ENTRIES} "
                                     "entries are for admins' entries and joins with an open invite")

    def _ready(self, entry: Entry) -> bool:
        return all(p in self.entries for p in entry.parents)

    def _settle(self, entry: Entry) -> None:
        """Move `entry` into the log, then every waiting entry it completes (each waiting entry
        is looked at only when one of its missing parents arrives: linear in the merge)."""
        self._refused.clear()
        todo = [entry]
        while todo:
            e = todo.pop()
            self.entries[e.id] = e
            self._referenced.update(e.parents)
            for wid in self._wanted.pop(e.id, ()):
                w = self._waiting.get(wid)
                if w is None or not self._ready(w):
                    continue
                del self._waiting[wid]
                self._waiting_bytes -= len(w.raw)
                try:
                    self._state = None
                    self._check_room(w)  # (a fresh state: only while the log is in its reserve)
                except MemberLogFullError:
                    continue  # no room now: dropped (a later copy may still fit)
                todo.append(w)

    def _changed(self) -> None:
        self._state = None
        self._heads = None
        self._digest = None

    def heads(self) -> list[bytes]:
        if self._heads is None:
            self._heads = sorted(eid for eid in self.entries if eid not in self._referenced)
        return list(self._heads)

    def parents_for_new(self) -> list[bytes]:
        """The parents of an entry this device writes: the newest entries that had an effect.
        A void head (an entry with no effect, e.g. a reader's forged invite) is never named:
        its nearest effective ancestors are, so void entries cannot push an entry past
        MAX_PARENTS nor make it wait at a replica that refused them for room. At most
        MAX_PARENTS, by ascending id; those left out are named by a later entry."""
        void = {eid for eid, _ in self.state.void}
        out: set[bytes] = set()
        seen: set[bytes] = set()
        todo = self.heads()
        while todo:
            eid = todo.pop()
            if eid in seen:
                continue
            seen.add(eid)
            if eid in void:
                todo.extend(self.entries[eid].parents)
            else:
                out.add(eid)
        return sorted(out)[:MAX_PARENTS]

    def export(self) -> list[list]:
        """Every entry in replay order (parents first), then those still waiting for a parent
        (e.g. our own join before the invite arrived; at most MAX_WAITING_ENTRIES), as wire lists."""
        return [self.entries[eid].wire() for eid in self.order()] + \
            [self._waiting[eid].wire() for eid in sorted(self._waiting)]

    def digest(self) -> bytes:
        """Names the log's content (its heads and waiting entries): equal digests, equal logs."""
        if self._digest is None:
            self._digest = hashlib.sha256(b"".join(self.heads()) + b"|" + b"".join(sorted(self._waiting))).digest()
        return self._digest

    def ids(self) -> set[bytes]:
        """Ids of every entry held, settled or waiting."""
        return set(self.entries) | set(self._waiting)

    def order(self) -> list[bytes]:
        children: dict[bytes, list[bytes]] = {}
        indeg: dict[bytes, int] = {}
        for eid, e in self.entries.items():
            indeg[eid] = len(e.parents)
            for p in e.parents:
                children.setdefault(p, []).append(eid)
        ready = [eid for eid, n in indeg.items() if n == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            eid = heapq.heappop(ready)
            out.append(eid)
            for c in children.get(eid, ()):
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(ready, c)
        return out

    # --- replay --------------------------------------------------------------------------

    @property
    def state(self) -> MemberState:
        if self._state is None:
            self._state = self._replay()
        return self._state

    def _replay(self) -> MemberState:
        st = MemberState(self.space_id or b"")
        for eid in self.order():
            e = self.entries[eid]
            why = self._apply(st, e)
            if why is not None:
                st.void.append((eid, why))
        return st

    def _apply(self, st: MemberState, e: Entry) -> str | None:
        b, kind, author = e.body, e.kind, e.author
        if kind == "create":
            st.roles[author] = "admin"
            st.x25519[author] = b["x"]
            st.epochs.append(Epoch(b["c"], e.id))
            return None
        if kind == "join":
            inv = st.invites.get(b["i"])
            if inv is None or inv.revoked or inv.used_by is not None:
                return "invite unknown, revoked or already used"
            if author in st.roles or author in st.removed:
                return "device is or was a member"
            msg = JOIN_LABEL + st.space_id + author + b["x"]
            if not self.crypto.ed25519_verify(b["i"], msg, b["is"]):
                return "not signed by the invite key"
            inv.used_by = author
            st.roles[author] = inv.role
            st.x25519[author] = b["x"]
            return None
        if st.roles.get(author) != "admin":
            return f"{kind} needs an admin"
        if kind == "invite":
            if b["i"] in st.invites or b["i"] in st.roles:
                return "invite key already used"
            st.invites[b["i"]] = Invite(b["r"], b["ix"])
        elif kind == "role":
            m = b["m"]
            if m not in st.roles:
                return "not a member"
            if b["r"] not in WRITE_ROLES:
                st.cuts[m] = max(st.cuts.get(m, 0), b["u"])
            st.roles[m] = b["r"]
        elif kind == "remove":
            m = b["m"]
            if m in st.invites and st.invites[m].used_by is None:
                st.invites[m].revoked = True
            elif m in st.roles:
                del st.roles[m]
                st.removed.add(m)
                st.cuts[m] = max(st.cuts.get(m, 0), b["u"])
            else:
                return "not a member or open invite"
        elif kind == "rotate":
            if any(ep.key_id == b["c"] for ep in st.epochs):
                return "key id already used"
            st.epochs.append(Epoch(b["c"], e.id, {r: w for r, w in b["w"]}))
        elif kind == "grant":
            for ep in st.epochs:
                if ep.key_id == b["c"]:
                    for r, w in b["w"]:
                        ep.wraps.setdefault(r, w)
                    break
            else:
                return "unknown key id"
        return None

    # --- writing entries -------------------------------------------------------------------

    def body(self, kind: str, author: bytes, **fields: Any) -> dict:
        if self.space_id is None:
            raise ValidationError("the member log has no create entry yet")
        return {"v": ENTRY_VERSION, "k": kind, "a": author, "p": self.parents_for_new(), "s": self.space_id,
                **fields}


def _effective_now(entry: Entry, st: MemberState) -> bool:
    """Whether `entry` could have an effect on state `st`: written by an admin, or a join with
    an open invite (what a log in its ADMIN_RESERVE still takes)."""
    if entry.kind == "join":
        inv = st.invites.get(entry.body["i"])
        return inv is not None and inv.used_by is None and not inv.revoked
    return st.roles.get(entry.author) == "admin"


def genesis(crypto: CryptoBackend, identity: Any, key_id: bytes) -> Entry:
    """The create entry of a new space (its id fixes the space id)."""
    body = {"v": ENTRY_VERSION, "k": "create", "a": identity.actor, "p": [],
            "x": crypto.x25519_public_key(x25519_private(identity.export_seed(), crypto)),
            "c": key_id, "n": crypto.random_bytes(16)}
    return sign_entry(body, identity.sign)


def join_signature(crypto: CryptoBackend, invite_seed: bytes, space_id: bytes, actor: bytes, x: bytes) -> bytes:
    return crypto.ed25519_sign(invite_seed, JOIN_LABEL + space_id + actor + x)


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
