"""Identity: an Ed25519 key pair. The actor id of every block is its 32-byte public key.

The private part is the 32-byte seed (RFC 8032). It never appears in repr() or str(), and only
leaves the object through the explicitly named `export_seed()` (and `save()`).

Identity file (text, UTF-8, one line of JSON with sorted keys, then a newline):

    {"actor":"<64 hex>","format":"ostracon-identity","seed":"<64 hex>","version":1}

- created with mode 0600 (O_CREAT|O_EXCL, then fchmod, so the umask cannot widen it and an
  existing file or a planted symlink is never followed); `save` refuses to overwrite unless
  `overwrite=True`, which writes a temporary 0600 file and renames it over the old one;
- `load` checks `format`, `version`, that the seed is 32 bytes and that `actor` is the public
  key of the seed (a damaged file fails loudly instead of signing as somebody else);
- `load` REFUSES a file that group or others can read or write (InsecurePermissionsError), like
  ssh does for private keys: a key that others could read must be treated as leaked. Pass
  `allow_insecure=True` to load it anyway (a warning is issued). Not checked on Windows, where
  POSIX mode bits do not describe access.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import warnings
from typing import NoReturn

from ..core.errors import (  # noqa: F401  (re-exported)
    IdentityExistsError,
    IdentityFileError,
    InsecurePermissionsError,
    StorageError,
    ValidationError,
)
from .base import CryptoBackend

SEED_SIZE = 32
ACTOR_SIZE = 32
SIGNATURE_SIZE = 64
FILE_FORMAT = "ostracon-identity"
FILE_VERSION = 1
FILE_MODE = 0o600
# An identity file is ~160 bytes; refuse to read anything much larger (it is not ours).
MAX_IDENTITY_FILE_SIZE = 4096
# Fingerprint: 80 bits of a domain-separated hash, shown as 4 groups of 4 base32 chars.
# Enough to compare two devices by eye; not a security boundary (the actor id is).
FINGERPRINT_LABEL = b"ostracon/fingerprint/v1\x00"


def _backend(crypto: CryptoBackend | None) -> CryptoBackend:
    if crypto is not None:
        return crypto
    from . import default_backend

    return default_backend()


def _check_seed(seed: object) -> bytes:
    if isinstance(seed, (bytearray, memoryview)):
        seed = bytes(seed)
    if not isinstance(seed, bytes):
        raise ValidationError(f"an identity seed must be bytes, not {type(seed).__name__}")
    if len(seed) != SEED_SIZE:
        raise ValidationError(f"an identity seed must be {SEED_SIZE} bytes, got {len(seed)}")
    return seed


def fingerprint_of(actor: bytes) -> str:
    """Short human string for an actor id, e.g. 'k3xq-7mva-2bd4-hc9e'."""
    digest = hashlib.sha256(FINGERPRINT_LABEL + bytes(actor)).digest()[:10]
    text = base64.b32encode(digest).decode("ascii").lower()  # 16 chars, no padding for 10 bytes
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


class Identity:
    """An Ed25519 signing identity. Construct with `generate`, `from_seed` or `load`."""

    __slots__ = ("_seed", "_actor", "_crypto")

    def __init__(self, seed: bytes, *, crypto: CryptoBackend | None = None) -> None:
        self._seed = _check_seed(seed)
        self._crypto = _backend(crypto)
        self._actor = self._crypto.ed25519_public_key(self._seed)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def generate(cls, crypto: CryptoBackend | None = None) -> Identity:
        backend = _backend(crypto)
        return cls(backend.random_bytes(SEED_SIZE), crypto=backend)

    @classmethod
    def from_seed(cls, seed: bytes, crypto: CryptoBackend | None = None) -> Identity:
        return cls(seed, crypto=crypto)

    # --- public face --------------------------------------------------------------------

    @property
    def actor(self) -> bytes:
        """The 32-byte Ed25519 public key: the actor id in blocks and seals."""
        return self._actor

    @property
    def actor_hex(self) -> str:
        return self._actor.hex()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self._actor)

    @property
    def crypto(self) -> CryptoBackend:
        return self._crypto

    def sign(self, message: bytes) -> bytes:
        """64-byte Ed25519 signature over `message` (callers add their own domain label)."""
        return self._crypto.ed25519_sign(self._seed, message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self._crypto.ed25519_verify(self._actor, message, signature)

    @staticmethod
    def verify_signature(actor: bytes, message: bytes, signature: bytes, crypto: CryptoBackend | None = None) -> bool:
        """True iff `signature` is `actor`'s signature over `message`. Never raises on bad input."""
        return _backend(crypto).ed25519_verify(actor, message, signature)

    def export_seed(self) -> bytes:
        """The 32-byte private seed. Whoever holds it can sign as this identity."""
        return self._seed

    def __repr__(self) -> str:
        return f"Identity(actor={self.actor_hex[:16]}…, fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return hmac.compare_digest(self._seed, other._seed)

    def __hash__(self) -> int:
        return hash(self._actor)

    def __reduce__(self) -> NoReturn:
        # Refuse pickling: it would silently copy the private key into caches, queues, logs.
        raise TypeError("Identity objects are not picklable; use export_seed()/save() deliberately")

    # --- files --------------------------------------------------------------------------

    def _file_bytes(self) -> bytes:
        doc = {"actor": self.actor_hex, "format": FILE_FORMAT, "seed": self._seed.hex(), "version": FILE_VERSION}
        return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the identity to `path` with mode 0600. Refuses an existing file unless `overwrite`."""
        path = os.fspath(path)
        data = self._file_bytes()
        if not overwrite:
            _write_new(path, data)
            return
        directory = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.urandom(6).hex()}")
        _write_new(tmp, data)
        try:
            os.replace(tmp, path)  # replaces a symlink itself, never writes through it
        except OSError as e:
            _unlink_quietly(tmp)
            raise IdentityFileError(f"cannot replace identity file {path!r}: {e.strerror or e}") from e
        _fsync_dir(directory)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, crypto: CryptoBackend | None = None, allow_insecure: bool = False
    ) -> Identity:
        path = os.fspath(path)
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError as e:
            raise IdentityFileError(f"no identity file at {path!r}") from e
        except OSError as e:
            raise IdentityFileError(f"cannot open identity file {path!r}: {e.strerror or e}") from e
        try:
            st = os.fstat(fd)  # on the open file: no window between the check and the read
            if os.name != "nt" and st.st_mode & 0o077:
                msg = (
                    f"identity file {path!r} is accessible by group/others (mode {st.st_mode & 0o777:04o}); "
                    f"run `chmod 600 {path}` and consider the key exposed"
                )
                if not allow_insecure:
                    raise InsecurePermissionsError(msg)
                warnings.warn(msg, stacklevel=2)
            chunks = []
            total = 0
            while True:
                chunk = os.read(fd, MAX_IDENTITY_FILE_SIZE + 1 - total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > MAX_IDENTITY_FILE_SIZE:
                    raise IdentityFileError(
                        f"{path!r} is larger than {MAX_IDENTITY_FILE_SIZE} bytes: not an identity file")
        except OSError as e:
            raise IdentityFileError(f"cannot read identity file {path!r}: {e.strerror or e}") from e
        finally:
            os.close(fd)
        return cls._from_file_bytes(b"".join(chunks), path, crypto)

    @classmethod
    def load_or_generate(cls, path: str | os.PathLike[str], *, crypto: CryptoBackend | None = None) -> Identity:
        """Load `path`, or generate a new identity and save it there if the file does not exist."""
        if os.path.lexists(os.fspath(path)):
            return cls.load(path, crypto=crypto)
        ident = cls.generate(crypto)
        try:
            ident.save(path)
        except IdentityExistsError:
            return cls.load(path, crypto=crypto)  # lost a race with another process: use its key
        return ident

    @classmethod
    def _from_file_bytes(cls, data: bytes, path: str, crypto: CryptoBackend | None) -> Identity:
        def bad(why: str) -> IdentityFileError:
            return IdentityFileError(f"{path!r} is not a valid identity file: {why}")

        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad("not UTF-8 JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise bad(f"'format' is not {FILE_FORMAT!r}")
        version = doc.get("version")
        if version != FILE_VERSION or isinstance(version, bool):
            raise bad(f"unsupported version {version!r} (this build reads version {FILE_VERSION})")
        seed_hex, actor_hex = doc.get("seed"), doc.get("actor")
        if not isinstance(seed_hex, str) or not isinstance(actor_hex, str):
            raise bad("'seed' and 'actor' must be hex strings")
        try:
            seed, actor = bytes.fromhex(seed_hex), bytes.fromhex(actor_hex)
        except ValueError:
            raise bad("'seed' or 'actor' is not hex") from None
        if len(seed) != SEED_SIZE or len(actor) != ACTOR_SIZE:
            raise bad(f"'seed' and 'actor' must be {SEED_SIZE} bytes each")
        ident = cls(seed, crypto=crypto)
        if not hmac.compare_digest(ident.actor, actor):
            raise bad("'actor' is not the public key of 'seed' (damaged file?)")
        return ident


def _write_new(path: str, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError as e:
        raise IdentityExistsError(f"{path!r} already exists; pass overwrite=True to replace it") from e
    except OSError as e:
        raise IdentityFileError(f"cannot create identity file {path!r}: {e.strerror or e}") from e
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)  # exactly 0600 whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as e:
        os.close(fd)
        _unlink_quietly(path)
        raise IdentityFileError(f"cannot write identity file {path!r}: {e.strerror or e}") from e
    os.close(fd)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(directory: str) -> None:
    # Make the new directory entry durable. Not possible on every platform (Windows): best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
