"""Space: the unit of sharing (docs/CRYPTO.md "Spaces").

A space has a random 16-byte id, one 256-bit key per key epoch and, when it was created with a
device identity, a signed member log (crypto/members.py) with roles, invites and rotations.
Everything the relay and the frames need is derived from the current epoch key K:

    room key    = Ed25519 seed HKDF-SHA256(K, salt=space id, info="ostracon/room-key/v1", 32)
    room id     = its public key (32 bytes, 64 hex) -> the relay sees this and admits only
                  connections that sign its challenge with the room key (relay/admission.py)
    frame key   = HKDF-SHA256(K, salt=space id, info="ostracon/frame/v1",  32) -> AES-256-GCM
    commit key  = HKDF-SHA256(K, salt=space id, info="ostracon/commit/v1", 32) -> key commitment
    key id      = HKDF-SHA256(K, salt=space id, info="ostracon/key-id/v1", 16) -> names the epoch
    frame room  = room id[:16] (the 16-byte room field of every frame header)

The key is random: a room id is never a guessing oracle for a passphrase, and two spaces with
the same name never meet. A passphrase, if used, only wraps this state on one device
(crypto/spacefile.py). `Space.from_passphrase` derives the key of a passphrase space of an
earlier version (PBKDF2 over the passphrase, salted by the name) so such spaces keep working;
`migrate()` moves one to a random space (docs/CRYPTO.md "Migration").

Invites: `space.invite(relay_url)` gives one line of text ("ost2" + base32, checksum): space
id, current key, the one-time invite key and its log entry (member spaces), name, relay URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..core.errors import ValidationError, WrongKeyError
from ..core.protocol import relay as P
from ..core.protocol.frames import ROOM_ID_SIZE, FrameKeys
from ..core.unicode14 import UNICODE_VERSION, first_unassigned
from . import members as M
from .base import CryptoBackend
from .invites import (  # noqa: F401
    INVITE_CHECKSUM_LABEL,
    INVITE_CHECKSUM_SIZE,
    INVITE_PREFIX,
    INVITE_ROLE_CODES,
    INVITE_VERSION,
    MAX_NAME_BYTES,
    MAX_RELAY_URL_BYTES,
    SPACE_ID_SIZE,
    ParsedInvite,
    _check_name,
    _check_relay_url,
    parse_invite,
)

KEY_SIZE = 32
SPACE_SALT_LABEL = b"ostracon/space/v1\x00"
ROOM_KEY_INFO = b"ostracon/room-key/v1"
KEY_ID_INFO = b"ostracon/key-id/v1"
FRAME_INFO = b"ostracon/frame/v1"
COMMIT_INFO = b"ostracon/commit/v1"
KDF_ALGORITHM = "pbkdf2-hmac-sha256"

# OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256, and the floor the project promises.
DEFAULT_PASSPHRASE_ITERATIONS = 600_000
MIN_PASSPHRASE_ITERATIONS = 600_000
# WebCrypto takes an unsigned long; beyond this neither runtime could derive the key.
MAX_PASSPHRASE_ITERATIONS = 2**31 - 1
# A passphrase longer than this is a paste accident (PBKDF2 pre-hashes long passwords anyway).
MAX_PASSPHRASE_BYTES = 1024


def _backend(crypto: CryptoBackend | None) -> CryptoBackend:
    if crypto is not None:
        return crypto
    from . import default_backend

    return default_backend()


def _legacy_nfc(text: str, what: str) -> str:
    """NFC of `text` for the earlier passphrase derivation, the same in every runtime.

    NFC is only stable across Unicode versions for characters that were assigned in the
    older one, and the runtimes differ (CPython 3.11: Unicode 14; Pyodide: 16). So a character
    unassigned in Unicode 14 (core/unicode14.py) is refused with ValidationError instead of
    being normalised one way natively and another in the browser."""
    bad = first_unassigned(text)
    if bad is not None:
        raise ValidationError(
            f"the {what} holds U+{ord(bad):04X}, a character newer than Unicode {UNICODE_VERSION}: "
            "the earlier passphrase derivation cannot treat it the same in every runtime "
            "(new spaces use random secrets and keep text exactly)")
    return unicodedata.normalize("NFC", text)


def space_salt(name: str) -> bytes:
    """The PBKDF2 salt for a space name (domain label + NFC name, hashed). Raises
    ValidationError for a name holding characters newer than Unicode 14 (`_legacy_nfc`)."""
    return hashlib.sha256(SPACE_SALT_LABEL + _legacy_nfc(name, "space name").encode("utf-8")).digest()


@dataclass(frozen=True)
class KdfParams:
    """How a passphrase space key was derived; recorded so it can be shown and re-derived."""

    algorithm: str
    iterations: int
    salt: bytes
    salt_label: bytes = SPACE_SALT_LABEL
    length: int = KEY_SIZE



@dataclass(frozen=True)
class EpochKeys:
    """Everything derived from one epoch key (see the module docstring)."""

    key: bytes = field(repr=False)
    key_id: bytes
    room_seed: bytes = field(repr=False)
    room: bytes
    frames: FrameKeys = field(repr=False)


def derive_epoch(crypto: CryptoBackend, key: bytes, space_id: bytes) -> EpochKeys:
    hkdf = crypto.hkdf_sha256
    seed = hkdf(key, space_id, ROOM_KEY_INFO, 32)
    room = crypto.ed25519_public_key(seed)
    frames = FrameKeys(room[:ROOM_ID_SIZE], hkdf(key, space_id, FRAME_INFO, KEY_SIZE),
                       hkdf(key, space_id, COMMIT_INFO, KEY_SIZE))
    # The key id does not depend on the space id: the create entry, whose hash is the space id,
    # names the first epoch by it.
    return EpochKeys(key, hkdf(key, b"", KEY_ID_INFO, M.KEY_ID_SIZE), seed, room, frames)


class NotAMemberError(WrongKeyError):
    """This device was removed from the space (or never admitted): it holds no current key."""


class Space:
    """A shared space: its id, epoch keys, member log and derived room. Never prints a key.

    `members` is None for an open space (made from a bare key or an invite without a member
    log): everyone holding the key may read and write. Otherwise roles decide who may write
    and `remove` rotates the key."""

    __slots__ = ("space_id", "name", "kdf", "relay_url", "_crypto", "_keys", "_current", "members",
                 "identity", "_invite", "_first")

    def __init__(
        self,
        key: bytes,
        *,
        space_id: bytes = b"",
        name: str | None = None,
        kdf: KdfParams | None = None,
        relay_url: str | None = None,
        crypto: CryptoBackend | None = None,
        members: M.MemberLog | None = None,
        identity: Any = None,
        invite: tuple[bytes, bytes] | None = None,
    ) -> None:
        if isinstance(key, (bytearray, memoryview)):
            key = bytes(key)
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            got = len(key) if isinstance(key, bytes) else type(key).__name__
            raise ValidationError(f"a space key must be {KEY_SIZE} bytes, got {got}")
        if not isinstance(space_id, bytes) or len(space_id) not in (0, SPACE_ID_SIZE):
            raise ValidationError(f"a space id must be {SPACE_ID_SIZE} bytes")
        self.space_id = space_id
        self.name = _check_name(name, allow_none=True)
        self.kdf = kdf
        self.relay_url = None if relay_url is None else _check_relay_url(relay_url)
        self._crypto = _backend(crypto)
        first = derive_epoch(self._crypto, key, space_id)
        self._keys: dict[bytes, EpochKeys] = {first.key_id: first}
        self._current = first.key_id
        self._first = first.key_id
        self.members = members
        self.identity = identity
        self._invite = invite  # (invite seed, invite entry id) until the join entry is accepted
        if members is not None:
            self.refresh()

    # --- construction -------------------------------------------------------------------

    @classmethod
    def generate(cls, name: str | None = None, *, identity: Any = None,
                 crypto: CryptoBackend | None = None) -> Space:
        """A new space with a random id and key. With `identity` it gets a member log whose
        first entry makes that device the admin (needed for invites with roles and removal)."""
        backend = _backend(crypto)
        key = backend.random_bytes(KEY_SIZE)
        if identity is None:
            return cls(key, space_id=backend.random_bytes(SPACE_ID_SIZE), name=name, crypto=backend)
        first_id = backend.hkdf_sha256(key, b"", KEY_ID_INFO, M.KEY_ID_SIZE)
        root = M.genesis(backend, identity, first_id)
        log = M.MemberLog(backend)
        log.add(root)
        return cls(key, space_id=log.space_id or b"", name=name, crypto=backend, members=log, identity=identity)

    @classmethod
    def from_key(cls, key: bytes, name: str | None = None, *, space_id: bytes = b"",
                 crypto: CryptoBackend | None = None) -> Space:
        """An open space from a raw key (tests, scripts, spaces of earlier versions)."""
        return cls(key, space_id=space_id, name=name, crypto=crypto)

    @classmethod
    def from_passphrase(
        cls,
        passphrase: str,
        name: str,
        *,
        iterations: int = DEFAULT_PASSPHRASE_ITERATIONS,
        crypto: CryptoBackend | None = None,
        _insecure_for_tests: bool = False,
    ) -> Space:
        """Open a passphrase space of an earlier version: its key is PBKDF2 of the passphrase,
        salted by the name, exactly as before, so its data keeps syncing between devices that
        use it. Such a space is as weak as its passphrase (its room id lets an observer test
        guesses): `migrate()` it. New spaces: `generate` + a passphrase-wrapped space file."""
        if not isinstance(passphrase, str):
            raise ValidationError(f"a passphrase must be a str, not {type(passphrase).__name__}")
        passphrase = _legacy_nfc(passphrase, "passphrase")
        if not passphrase.strip():
            raise ValidationError("an empty (or whitespace-only) passphrase is refused")
        try:
            pw = passphrase.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("a passphrase must be valid Unicode (no lone surrogates)") from None
        if len(pw) > MAX_PASSPHRASE_BYTES:
            raise ValidationError(f"a passphrase must be at most {MAX_PASSPHRASE_BYTES} UTF-8 bytes")
        checked = _check_name(name, allow_none=False)
        assert checked is not None
        name = checked
        if isinstance(iterations, bool) or not isinstance(iterations, int):
            raise ValidationError(f"iterations must be an int, not {type(iterations).__name__}")
        floor = 1 if _insecure_for_tests else MIN_PASSPHRASE_ITERATIONS
        if not floor <= iterations <= MAX_PASSPHRASE_ITERATIONS:
            raise ValidationError(
                f"iterations must be between {MIN_PASSPHRASE_ITERATIONS:,} and "
                f"{MAX_PASSPHRASE_ITERATIONS:,}, got {iterations:,}"
            )
        backend = _backend(crypto)
        salt = space_salt(name)
        key = backend.pbkdf2_sha256(pw, salt, iterations, KEY_SIZE)
        return cls(key, name=name, kdf=KdfParams(KDF_ALGORITHM, iterations, salt), crypto=backend)

    def migrate(self, identity: Any, name: str | None = None) -> Space:
        """A new random space (with a member log, `identity` its admin) to move this one's data
        to: sync the same database with the result and invite the other devices to it. The
        database records the move, so it is explicit and never a silent fork."""
        return Space.generate(name if name is not None else self.name, identity=identity, crypto=self._crypto)

    # --- derived values -----------------------------------------------------------------

    @property
    def current(self) -> EpochKeys:
        return self._keys[self._current]

    @property
    def room_id(self) -> str:
        """Hex room id for URLs and the relay: the current epoch's room public key."""
        return self.current.room.hex()

    @property
    def room_id_bytes(self) -> bytes:
        return self.current.room

    @property
    def frame_key(self) -> bytes:
        return self.current.frames.frame_key

    @property
    def commit_key(self) -> bytes:
        return self.current.frames.commit_key

    @property
    def key_id(self) -> bytes:
        return self._current

    @property
    def binding(self) -> bytes:
        """Names this space for a database that syncs it (stable across key rotations)."""
        return self.space_id or self._first

    def frame_keys(self) -> FrameKeys:
        """What core.protocol.frames needs to seal this space's frames now."""
        return self.current.frames

    def keyring(self) -> dict[bytes, FrameKeys]:
        """Key commitment → frame keys of every epoch this device holds (old epochs stay
        readable)."""
        return {e.frames.commitment: e.frames for e in self._keys.values()}

    def sign_challenge(self, nonce: bytes, epoch: EpochKeys | None = None, *, relay: str) -> bytes:
        """Answer the relay's admission challenge for the current room (docs/RELAY.md), or for
        the room of another epoch this device holds. ``relay`` is the name of the relay the
        connection went to (``core.protocol.relay.relay_name(url)``): the answer is valid
        there only. Returns the 64-byte Ed25519 signature."""
        cur = epoch if epoch is not None else self.current
        return self._crypto.ed25519_sign(cur.room_seed, P.auth_message(cur.room, nonce, relay))

    @property
    def crypto(self) -> CryptoBackend:
        return self._crypto

    def export_key(self) -> bytes:
        """The current 32-byte epoch key. Whoever holds it can read and write this epoch."""
        return self.current.key

    def export_keys(self) -> list[bytes]:
        """Every epoch key this device holds, oldest first (for the space file)."""
        return [e.key for e in self._keys.values()]

    @property
    def pending_invite(self) -> tuple[bytes, bytes] | None:
        """(invite seed, invite entry id) until this device's join is in the log."""
        return self._invite

    def use_epoch(self, key_id: bytes) -> bool:
        """Make a held epoch current (open spaces restored from a file); False if not held."""
        if key_id not in self._keys:
            return False
        self._current = key_id
        return True

    def previous_epoch(self) -> EpochKeys | None:
        """The epoch before the current one, if this device holds its key: its room must hear
        about the rotation (members offline during it still listen there)."""
        if self.members is None:
            return None
        ids = [e.key_id for e in self.members.state.epochs]
        if self._current not in ids:
            return None
        i = ids.index(self._current)
        return self._keys.get(ids[i - 1]) if i > 0 else None

    def add_key(self, key: bytes) -> None:
        e = derive_epoch(self._crypto, key, self.space_id)
        self._keys.setdefault(e.key_id, e)

    # --- membership -----------------------------------------------------------------------

    def _x_private(self) -> bytes | None:
        if self.identity is None:
            return None
        return M.x25519_private(self.identity.export_seed(), self._crypto)

    def refresh(self) -> bool:
        """Re-read the member log: unwrap epoch keys addressed to this device (or its invite),
        move to the newest epoch it holds, send a pending join. True if the epoch changed."""
        log = self.members
        if log is None:
            return False
        st = log.state
        before = self._current
        mine = []
        if self.identity is not None:
            mine.append((self.identity.actor, self._x_private()))
        if self._invite is not None:
            seed = self._invite[0]
            mine.append((self._crypto.ed25519_public_key(seed), M.x25519_private(seed, self._crypto)))
        for ep in st.epochs:
            if ep.key_id in self._keys:
                continue
            for rid, xpriv in mine:
                w = ep.wraps.get(rid)
                key = None if w is None or xpriv is None else \
                    M.unwrap_key(self._crypto, xpriv, w, self.space_id + ep.key_id)
                if key is not None:
                    e = derive_epoch(self._crypto, key, self.space_id)
                    if e.key_id == ep.key_id:
                        self._keys[e.key_id] = e
                        break
        for ep in reversed(st.epochs):
            if ep.key_id in self._keys:
                self._current = ep.key_id
                break
        if self._invite is not None and self.identity is not None and self.identity.actor in st.roles:
            self._invite = None
        return self._current != before

    def join(self, identity: Any) -> M.Entry:
        """Redeem this invite for `identity`: a join entry (sent to the room by the sync
        client). The device becomes a member once an admin's log holds the invite."""
        if self.members is None or self._invite is None:
            raise ValidationError("this space was not opened from a member invite")
        self.identity = identity
        seed, parent = self._invite
        x = self._crypto.x25519_public_key(M.x25519_private(identity.export_seed(), self._crypto))
        body = {"v": M.ENTRY_VERSION, "k": "join", "a": identity.actor, "p": [parent], "s": self.space_id,
                "i": self._crypto.ed25519_public_key(seed), "x": x,
                "is": M.join_signature(self._crypto, seed, self.space_id, identity.actor, x)}
        entry = M.sign_entry(body, identity.sign)
        self.members.add(entry)
        return entry

    def adopt(self, identity: Any) -> None:
        """Use `identity` as this device (e.g. the database's, when syncing): joins with a
        pending invite. ValidationError if the space already belongs to another identity."""
        if self.identity is not None:
            if self.identity.actor != identity.actor:
                raise ValidationError("this space is held by another identity than the database's: "
                                      "membership and the database's signatures would disagree")
            return
        if self._invite is not None and self.members is not None:
            self.join(identity)
        else:
            self.identity = identity
            self.refresh()

    def role(self, actor: bytes | None = None) -> str | None:
        """Role of `actor` (default: this device); None for non-members. Open spaces: writer."""
        if self.members is None:
            return "writer"
        actor = actor if actor is not None else (self.identity.actor if self.identity is not None else b"")
        return self.members.state.role(actor)

    def write_limit(self, actor: bytes) -> int | None:
        """Highest sequence number of `actor` that replicas accept (None: no limit)."""
        if self.members is None:
            return None
        return self.members.state.write_limit(actor)

    def member_list(self) -> list[dict]:
        """[{actor, role}] of current members, sorted by actor."""
        if self.members is None:
            return []
        return [{"actor": a, "role": r} for a, r in sorted(self.members.state.roles.items())]

    @property
    def removed(self) -> bool:
        """True once the log says this device was removed."""
        return self.members is not None and self.identity is not None and \
            self.identity.actor in self.members.state.removed

    def _admin_entry(self, kind: str, **fields: Any) -> M.Entry:
        if self.members is None or self.identity is None:
            raise ValidationError("this space has no member log or no identity to sign with")
        if self.role() != "admin":
            raise ValidationError(f"{kind}: only an admin may change the members")
        entry = M.sign_entry(self.members.body(kind, self.identity.actor, **fields), self.identity.sign)
        self.members.add(entry)
        return entry

    def set_role(self, actor: bytes, role: str, *, upto: int = 0) -> M.Entry:
        """Change a member's role; `upto` = its highest sequence number that stays valid if it
        loses write access (what this device has seen of it)."""
        if role not in M.ROLES:
            raise ValidationError(f"role must be one of {M.ROLES}")
        return self._admin_entry("role", m=actor, r=role, u=upto)

    def remove(self, actor: bytes, *, upto: int = 0) -> list[M.Entry]:
        """Remove a member (or revoke an open invite) and rotate to a new epoch key wrapped to
        every remaining member: the removed device cannot read what is written next, and the
        new room refuses it. Returns the entries to publish."""
        entries = [self._admin_entry("remove", m=actor, u=upto)]
        entries.append(self.rotate())
        return entries

    def rotate(self) -> M.Entry:
        """A new epoch: fresh random key, wrapped to every member and open invite."""
        if self.members is None:
            raise ValidationError("an open space has no member log to rotate keys with")
        key = self._crypto.random_bytes(KEY_SIZE)
        e = derive_epoch(self._crypto, key, self.space_id)
        wraps = [[rid, M.wrap_key(self._crypto, x, key, self.space_id + e.key_id)]
                 for rid, x in sorted(self.members.state.recipients().items())]
        entry = self._admin_entry("rotate", c=e.key_id, w=wraps)
        self._keys[e.key_id] = e
        self.refresh()
        return entry

    def grant_missing(self) -> M.Entry | None:
        """Wrap the current key to members who lack it (joined concurrently with a rotation).
        None when nobody does or this device is not an admin."""
        if self.members is None or self.role() != "admin":
            return None
        st = self.members.state
        ep = next((x for x in st.epochs if x.key_id == self._current), None)
        if ep is None or ep is st.epochs[0]:
            return None
        missing = [[rid, M.wrap_key(self._crypto, x, self.current.key, self.space_id + ep.key_id)]
                   for rid, x in sorted(st.recipients().items()) if rid not in ep.wraps]
        if not missing:
            return None
        return self._admin_entry("grant", c=ep.key_id, w=missing)

    # --- invites ------------------------------------------------------------------------

    def invite(self, relay_url: str, *, role: str = "writer") -> str:
        """One line of text another device joins with (`Space.from_invite`). It carries the
        current key; in a member space also a one-time invite key recorded in the log (an
        admin's act), which admits exactly one device with `role`."""
        url = _check_relay_url(relay_url).encode("utf-8")
        name = (self.name or "").encode("utf-8")
        seed, entry_id, code = bytes(32), bytes(32), 0
        if self.members is not None:
            if role not in INVITE_ROLE_CODES:
                raise ValidationError(f"role must be one of {tuple(INVITE_ROLE_CODES)}")
            seed = self._crypto.random_bytes(32)
            ix = self._crypto.x25519_public_key(M.x25519_private(seed, self._crypto))
            entry = self._admin_entry("invite", i=self._crypto.ed25519_public_key(seed), ix=ix, r=role)
            entry_id, code = entry.id, INVITE_ROLE_CODES[role]
        sid = self.space_id or bytes(SPACE_ID_SIZE)
        body = struct.pack(">BB", INVITE_VERSION, code) + sid + self.current.key + seed + entry_id
        body += struct.pack(">B", len(name)) + name + struct.pack(">H", len(url)) + url
        body += hashlib.sha256(INVITE_CHECKSUM_LABEL + body).digest()[:INVITE_CHECKSUM_SIZE]
        return INVITE_PREFIX + base64.b32encode(body).decode("ascii").rstrip("=").lower()

    @classmethod
    def from_invite(cls, invite: str, *, identity: Any = None, crypto: CryptoBackend | None = None) -> Space:
        """Join a space from an invite string (ValidationError says what is malformed). For a
        member invite pass the device `identity`: a join entry is prepared at once."""
        inv = parse_invite(invite)
        backend = _backend(crypto)
        if inv.invite_seed is None or inv.entry_id is None:
            return cls(inv.key, space_id=inv.space_id, name=inv.name, relay_url=inv.relay_url, crypto=backend)
        log = M.MemberLog(backend, inv.space_id)
        sp = cls(inv.key, space_id=inv.space_id, name=inv.name, relay_url=inv.relay_url, crypto=backend,
                 members=log, invite=(inv.invite_seed, inv.entry_id))
        if identity is not None:
            sp.join(identity)
        return sp

    # --- hygiene ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Space(name={self.name!r}, room_id={self.room_id!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return hmac.compare_digest(self.binding, other.binding)

    def __hash__(self) -> int:
        return hash(self.binding)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Space objects are not picklable; use invite() or a space file deliberately")


