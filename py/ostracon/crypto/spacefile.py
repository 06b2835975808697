"""Keeping a space on one device: its state as bytes, optionally wrapped by a passphrase
(docs/CRYPTO.md "Space files").

The passphrase never derives a space key: it only wraps this device's copy of the random
space secret, so nothing it produces leaves the device and two people using the same
passphrase (or name) never share a space.

    state   = canonical msgpack {"v": 1, "id": space id, "name", "keys": [epoch keys, oldest
              first], "log": member log entries or None, "invite": [seed, entry id] or None,
              "relay": URL or ""}
    wrapped = {"v": 1, "kdf": "pbkdf2-hmac-sha256", "it": iterations, "salt": 16 random bytes,
               "check": HMAC-SHA256(kek, "ostracon/space-file-check/v1")[:16],
               "nonce": 12 random bytes, "ct": AES-256-GCM(kek, nonce, state, "ostracon/space-file/v1\\0")}
    kek     = PBKDF2-HMAC-SHA256(UTF-8(passphrase), salt, iterations, 32)

`check` is the key commitment: a wrong passphrase fails it and raises WrongKeyError before
any decryption is tried. PBKDF2 runs through the crypto backend (hashlib natively, WebCrypto
in the browser, where Pyodide's hashlib has neither pbkdf2_hmac nor scrypt).

Text policy: the passphrase is used as the UTF-8 bytes of exactly the string given — no
Unicode normalisation, because NFC/NFKC results depend on the runtime's Unicode database
(Python 3.11 ships Unicode 14, Pyodide's 3.14 Unicode 16) and a passphrase must unlock the
same bytes everywhere. Refused: non-str, empty or whitespace-only, lone surrogates, more than
MAX_PASSPHRASE_BYTES.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from ..core.encoding import decode, encode
from ..core.errors import CryptoError, OstraconError, StorageError, ValidationError, WrongKeyError
from . import members as M
from .base import CryptoBackend
from .space import KEY_SIZE, MAX_PASSPHRASE_BYTES, MIN_PASSPHRASE_ITERATIONS, Space, _backend

STATE_VERSION = 1
WRAP_VERSION = 1
KDF_NAME = "pbkdf2-hmac-sha256"
#: OWASP 2023 for PBKDF2-HMAC-SHA256; the same floor as passphrase spaces of earlier versions.
DEFAULT_WRAP_ITERATIONS = 600_000
SALT_SIZE = 16
CHECK_LABEL = b"ostracon/space-file-check/v1"
AAD = b"ostracon/space-file/v1\x00"
FILE_FORMAT = "ostracon-space"
#: A space file holds keys and a member log (<= MAX_LOG_ENTRIES entries); 8 MiB is far above
#: any real one and stops a wrong path from being read into memory whole.
MAX_SPACE_FILE_BYTES = 8 * 1024 * 1024


def passphrase_bytes(passphrase: object) -> bytes:
    """The exact bytes a passphrase stands for (see "Text policy")."""
    if not isinstance(passphrase, str):
        raise ValidationError(f"a passphrase must be a str, not {type(passphrase).__name__}")
    if not passphrase.strip():
        raise ValidationError("an empty (or whitespace-only) passphrase is refused")
    try:
        pw = passphrase.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("a passphrase must be valid Unicode (no lone surrogates)") from None
    if len(pw) > MAX_PASSPHRASE_BYTES:
        raise ValidationError(f"a passphrase must be at most {MAX_PASSPHRASE_BYTES} UTF-8 bytes")
    return pw


def export_state(space: Space) -> bytes:
    """Everything needed to reopen `space` on this device (contains its keys)."""
    log = space.members.export() if space.members is not None else None
    pending = space.pending_invite
    invite = list(pending) if pending is not None else None
    return encode({"v": STATE_VERSION, "id": space.space_id, "name": space.name or "",
                   "keys": space.export_keys(), "current": space.key_id, "log": log, "invite": invite,
                   "relay": space.relay_url or ""})


def import_state(data: bytes, *, identity: Any = None, crypto: CryptoBackend | None = None) -> Space:
    backend = _backend(crypto)
    try:
        st = decode(bytes(data))
        keys, sid = st["keys"], st["id"]
        if st["v"] != STATE_VERSION or not keys or any(not isinstance(k, bytes) or len(k) != KEY_SIZE for k in keys):
            raise ValueError
    except (OstraconError, KeyError, TypeError, ValueError):
        raise ValidationError("not a space state (damaged or of another version)") from None
    log = None
    if st.get("log") is not None:
        log = M.MemberLog(backend, sid or None)
        log.merge(st["log"])
    inv = st.get("invite")
    sp = Space(keys[0], space_id=sid, name=st.get("name") or None, relay_url=st.get("relay") or None,
               crypto=backend, members=None, identity=identity,
               invite=(inv[0], inv[1]) if isinstance(inv, list) and len(inv) == 2 else None)
    for k in keys[1:]:
        sp.add_key(k)
    sp.members = log
    if log is not None:
        sp.refresh()
    elif isinstance(st.get("current"), bytes):
        sp.use_epoch(st["current"])
    return sp


def wrap(data: bytes, passphrase: str, *, iterations: int = DEFAULT_WRAP_ITERATIONS,
         crypto: CryptoBackend | None = None, _insecure_for_tests: bool = False) -> bytes:
    """Encrypt `data` (a space state) under a passphrase; random salt and nonce."""
    backend = _backend(crypto)
    pw = passphrase_bytes(passphrase)
    floor = 1 if _insecure_for_tests else MIN_PASSPHRASE_ITERATIONS
    if type(iterations) is not int or not floor <= iterations <= 2**31 - 1:
        raise ValidationError(f"iterations must be an int >= {MIN_PASSPHRASE_ITERATIONS:,}")
    salt, nonce = backend.random_bytes(SALT_SIZE), backend.random_bytes(12)
    kek = backend.pbkdf2_sha256(pw, salt, iterations, 32)
    check = hmac.new(kek, CHECK_LABEL, hashlib.sha256).digest()[:16]
    return encode({"v": WRAP_VERSION, "kdf": KDF_NAME, "it": iterations, "salt": salt, "check": check,
                   "nonce": nonce, "ct": backend.aes_gcm_encrypt(kek, nonce, data, AAD)})


def unwrap(blob: bytes, passphrase: str, *, crypto: CryptoBackend | None = None) -> bytes:
    """The data `wrap` sealed. WrongKeyError for a wrong passphrase; ValidationError for bytes
    that are not a wrapped space."""
    backend = _backend(crypto)
    pw = passphrase_bytes(passphrase)
    try:
        w = decode(bytes(blob))
        it, salt, check, nonce, ct = w["it"], w["salt"], w["check"], w["nonce"], w["ct"]
        if w["v"] != WRAP_VERSION or w["kdf"] != KDF_NAME or type(it) is not int or not 1 <= it <= 2**31 - 1 \
                or len(salt) != SALT_SIZE or len(check) != 16 or len(nonce) != 12:
            raise ValueError
    except (OstraconError, KeyError, TypeError, ValueError):
        raise ValidationError("not a passphrase-wrapped space (damaged or of another version)") from None
    kek = backend.pbkdf2_sha256(pw, salt, it, 32)
    if not hmac.compare_digest(hmac.new(kek, CHECK_LABEL, hashlib.sha256).digest()[:16], check):
        raise WrongKeyError("wrong passphrase for this space")
    try:
        return backend.aes_gcm_decrypt(kek, nonce, ct, AAD)
    except CryptoError:
        raise ValidationError("the wrapped space is damaged (it does not authenticate)") from None


def save(space: Space, path: str | os.PathLike[str], *, passphrase: str | None = None,
         iterations: int = DEFAULT_WRAP_ITERATIONS, _insecure_for_tests: bool = False) -> None:
    """Write the space to `path` (mode 0600, replaced atomically), wrapped by `passphrase` if
    given. Without one the file holds the keys in clear: protect it like an identity file."""
    data = export_state(space)
    if passphrase is not None:
        data = wrap(data, passphrase, iterations=iterations, crypto=space.crypto,
                    _insecure_for_tests=_insecure_for_tests)
    doc = {"format": FILE_FORMAT, "version": 1, "wrapped": passphrase is not None, "data": data.hex()}
    text = (json.dumps(doc, sort_keys=True) + "\n").encode("ascii")
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.urandom(6).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StorageError(f"cannot write space file {path!r}: {e.strerror or e}") from e


def load(path: str | os.PathLike[str], *, passphrase: str | None = None, identity: Any = None,
         crypto: CryptoBackend | None = None) -> Space:
    """Read a space file. WrongKeyError: wrong passphrase; ValidationError: a passphrase is
    needed (or given for an unwrapped file), or the file is not a space file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPACE_FILE_BYTES + 1)
    except OSError as e:
        raise StorageError(f"cannot read space file {path!r}: {e.strerror or e}") from e
    try:
        doc = json.loads(raw.decode("utf-8"))
        if doc["format"] != FILE_FORMAT or doc["version"] != 1 or len(raw) > MAX_SPACE_FILE_BYTES:
            raise ValueError
        data, wrapped = bytes.fromhex(doc["data"]), bool(doc["wrapped"])
    except (UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise ValidationError(f"{path!r} is not a space file") from None
    if wrapped != (passphrase is not None):
        raise ValidationError("this space file is wrapped by a passphrase: give it" if wrapped
                              else "this space file is not wrapped by a passphrase")
    if wrapped:
        data = unwrap(data, passphrase or "", crypto=crypto)
    return import_state(data, identity=identity, crypto=crypto)
