"""A database's own copy of its space, kept in the storage's meta records (the browser keeps
it in IndexedDB this way; docs/CRYPTO.md "Space files" describes the bytes).

`open_space(storage, spec, identity=…)` turns what an app was given into a Space:

- ``{"invite": text}`` (optionally ``"passphrase"``): joins the space of the invite and keeps
  its state, wrapped by the passphrase if one is given;
- ``{"create": true, "name": n}`` (optionally ``"passphrase": p``): a new random space with
  this device as admin, its state wrapped by ``p`` if given; later opens with
  ``{"passphrase": p}`` unlock it (WrongKeyError for a wrong passphrase), or with ``{}`` when
  it is kept without one. Other devices join with invites. A database that already keeps a
  space opens that one (a database belongs to one space);
- ``{}``: the space kept in this database (ValidationError if there is none, or if it is
  locked by a passphrase);
- ``{"passphrase": p, "name": n}`` with no state kept: a passphrase space of an earlier
  version (the key derived from passphrase and name, as before), so apps and data of earlier
  versions keep working and nothing forks; ``migrate`` it explicitly;
- ``{"key": 32 bytes or hex, "name": n}``: an open space from a raw key (tests, scripts).

``migrate_space`` moves a database from an earlier passphrase space to a random one.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ValidationError, WrongKeyError
from . import spacefile
from .base import CryptoBackend
from .identity import fingerprint_of
from .space import DEFAULT_PASSPHRASE_ITERATIONS, Space

META_STATE = "space/v1/state"
_WRAPPED, _PLAIN = b"W", b"P"


def _get(storage: Any, key: str) -> bytes | None:
    raw = storage.get_meta(key)
    return None if raw is None else bytes(raw)


def save_space(storage: Any, space: Space, passphrase: str | None = None, *,
               iterations: int = spacefile.DEFAULT_WRAP_ITERATIONS, _insecure_for_tests: bool = False) -> None:
    """Keep `space` in the storage's meta, wrapped by `passphrase` if given."""
    data = spacefile.export_state(space)
    if passphrase is not None:
        blob = _WRAPPED + spacefile.wrap(data, passphrase, iterations=iterations, crypto=space.crypto,
                                         _insecure_for_tests=_insecure_for_tests)
    else:
        blob = _PLAIN + data
    storage.set_meta(META_STATE, blob)


def load_space(storage: Any, passphrase: str | None, *, identity: Any,
               crypto: CryptoBackend | None = None) -> Space | None:
    """The space kept in meta, or None. WrongKeyError: wrong passphrase."""
    blob = _get(storage, META_STATE)
    if blob is None:
        return None
    if blob[:1] == _WRAPPED:
        if passphrase is None:
            raise ValidationError("this database's space is locked by a passphrase: give it")
        data = spacefile.unwrap(blob[1:], passphrase, crypto=crypto)
    else:
        data = blob[1:]
    return spacefile.import_state(data, identity=identity, crypto=crypto)


def open_space(storage: Any, spec: Any, *, identity: Any, crypto: CryptoBackend | None = None,
               _insecure_for_tests: bool = False) -> Space:
    """See the module docstring. Raises ValidationError for a malformed spec, WrongKeyError for
    a wrong passphrase or an invite of another space than the one this database holds."""
    if not isinstance(spec, dict):
        raise ValidationError("space must be {invite}, {passphrase, name} or {key, name}")
    passphrase = spec.get("passphrase")
    # Tests use 1,000 PBKDF2 iterations (the floor is 600,000; the flag says what it is).
    iterations = 1000 if _insecure_for_tests else spacefile.DEFAULT_WRAP_ITERATIONS
    if "invite" in spec:
        space = Space.from_invite(spec["invite"], identity=identity, crypto=crypto)
        try:
            held = load_space(storage, passphrase, identity=identity, crypto=crypto)
        except ValidationError:
            held = None
        if held is not None:
            if held.binding != space.binding:
                raise WrongKeyError("this database holds another space: wrong invite")
            return held  # already joined: the invite is spent, keep what we have
        save_space(storage, space, passphrase, iterations=iterations, _insecure_for_tests=_insecure_for_tests)
        return space
    if "key" in spec:
        key = spec["key"]
        if isinstance(key, str):
            try:
                key = bytes.fromhex(key)
            except ValueError:
                raise ValidationError("space key must be 64 hex digits") from None
        return Space.from_key(key, spec.get("name"), crypto=crypto)
    held = load_space(storage, passphrase, identity=identity, crypto=crypto)
    if held is not None:
        return held
    if spec.get("create"):
        space = Space.generate(spec.get("name"), identity=identity, crypto=crypto)
        save_space(storage, space, passphrase, iterations=iterations, _insecure_for_tests=_insecure_for_tests)
        return space
    if passphrase is None or not spec.get("name"):
        raise ValidationError("no space is kept in this database: create one ({create, name[, passphrase]}) "
                              "or join with an invite")
    return legacy_space(spec, _insecure_for_tests=_insecure_for_tests, crypto=crypto)


def legacy_space(spec: dict, *, crypto: CryptoBackend | None = None, _insecure_for_tests: bool = False) -> Space:
    """The passphrase space of an earlier version named by ``{passphrase, name}`` (its key
    derived from both, docs/CRYPTO.md "Migration of earlier passphrase spaces")."""
    legacy_iterations = 1000 if _insecure_for_tests else DEFAULT_PASSPHRASE_ITERATIONS
    return Space.from_passphrase(spec.get("passphrase") or "", str(spec.get("name") or ""), crypto=crypto,
                                 iterations=legacy_iterations, _insecure_for_tests=_insecure_for_tests)


def migrate_space(storage: Any, old: Space, *, identity: Any, passphrase: str | None = None,
                  iterations: int = spacefile.DEFAULT_WRAP_ITERATIONS, _insecure_for_tests: bool = False) -> Space:
    """Move ``old``, a passphrase space of an earlier version (``legacy_space``), to a new
    random space with ``identity`` as admin, kept in this database (wrapped by
    ``passphrase`` if given), and return it. The caller checks first that the database held
    ``old`` and records the move afterwards (``sync.members.check_binding(db, new,
    rebind_from=old)``), so a move is explicit and never a silent fork. ValidationError if
    this database already keeps a member space."""
    if _get(storage, META_STATE) is not None:
        raise ValidationError("this database already keeps a member space: open it instead of migrating")
    if old.members is not None:
        raise ValidationError("only a passphrase space of an earlier version is migrated")
    new = old.migrate(identity)
    save_space(storage, new, passphrase, iterations=iterations, _insecure_for_tests=_insecure_for_tests)
    return new


def member_rows(space: Space, me: bytes) -> list[dict]:
    """[{actor (hex), fingerprint, role, me}] for display, sorted by actor."""
    return [{"actor": m["actor"].hex(), "fingerprint": fingerprint_of(m["actor"]), "role": m["role"],
             "me": m["actor"] == me} for m in space.member_list()]
