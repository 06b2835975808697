"""Identity: a signing key pair, Ed25519 (the default) or ECDSA P-256, chosen per identity.
The actor id of every block it writes is its public key in actor-id form (core/actors.py:
the bare 32-byte Ed25519 key, or `80 24` ‖ the 33-byte compressed P-256 point).

The private part is 32 bytes: the Ed25519 seed (RFC 8032) or the P-256 scalar d (big-endian,
1 <= d < n). It never appears in repr() or str(), and only leaves the object through the
explicitly named `export_seed()` (and `save()`).

Identity file (text, UTF-8, one line of JSON with sorted keys, then a newline):

    {"actor":"<64 hex>","format":"ostracon-identity","seed":"<64 hex>","version":1}
    {"actor":"<70 hex>","algorithm":"p256","format":"ostracon-identity","seed":"<64 hex>","version":1}

`algorithm` is written only for P-256: Ed25519 files keep the exact bytes they always had.

- created with mode 0600 (O_CREAT|O_EXCL, then fchmod, so the umask cannot widen it and an
  existing file or a planted symlink is never followed); `save` refuses to overwrite unless
  `overwrite=True`, which writes a temporary 0600 file and renames it over the old one;
- `load` checks `format`, `version`, `algorithm`, that the seed is 32 bytes and that `actor`
  is the public key of the seed (a damaged file fails loudly instead of signing as somebody else);
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

from ..core.actors import ALGORITHMS, ED25519, P256, p256_actor, p256_private_ok
from ..core.errors import (  # noqa: F401  (re-exported)
    IdentityExistsError,
    IdentityFileError,
    InsecurePermissionsError,
    StorageError,
    ValidationError,
)
from .base import CryptoBackend

SEED_SIZE = 32
SIGNATURE_SIZE = 64
#: Draws of 32 random bytes tried for a P-256 scalar in 1..n-1. One draw fails with
#: probability < 2**-32, so this bound is never reached by an honest random source.
P256_KEYGEN_TRIES = 8
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


def _check_seed(seed: object, algorithm: str = ED25519) -> bytes:
    if isinstance(seed, (bytearray, memoryview)):
        seed = bytes(seed)
    if not isinstance(seed, bytes):
        raise ValidationError(f"an identity seed must be bytes, not {type(seed).__name__}")
    if len(seed) != SEED_SIZE:
        raise ValidationError(f"an identity seed must be {SEED_SIZE} bytes, got {len(seed)}")
    if algorithm == P256 and not p256_private_ok(seed):
        raise ValidationError("a P-256 private key must be in 1..n-1")
    return seed


def _check_algorithm(algorithm: object) -> str:
    if algorithm not in ALGORITHMS or type(algorithm) is not str:
        raise ValidationError(f"identity algorithm must be one of {', '.join(ALGORITHMS)}: {algorithm!r:.40}")
    return algorithm


def fingerprint_of(actor: bytes) -> str:
    """Short human string for an actor id, e.g. 'k3xq-7mva-2bd4-hc9e'."""
    digest = hashlib.sha256(FINGERPRINT_LABEL + bytes(actor)).digest()[:10]
    text = base64.b32encode(digest).decode("ascii").lower()  # 16 chars, no padding for 10 bytes
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


class Identity:
    """A signing identity (Ed25519 or ECDSA P-256). Construct with `generate`, `from_seed` or
    `load`. `algorithm`: "ed25519" (default) or "p256" (core/actors.py ALGORITHMS)."""

    __slots__ = ("_seed", "_actor", "_crypto", "_algorithm")

    def __init__(self, seed: bytes, *, crypto: CryptoBackend | None = None, algorithm: str = ED25519) -> None:
        self._algorithm = _check_algorithm(algorithm)
        self._seed = _check_seed(seed, algorithm)
        self._crypto = _backend(crypto)
        if algorithm == P256:
            self._actor = p256_actor(self._crypto.p256_public_key(self._seed))
        else:
            self._actor = self._crypto.ed25519_public_key(self._seed)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def generate(cls, crypto: CryptoBackend | None = None, *, algorithm: str = ED25519) -> Identity:
        """A new random identity. ValidationError for an unknown algorithm."""
        backend = _backend(crypto)
        if _check_algorithm(algorithm) == P256:
            for _ in range(P256_KEYGEN_TRIES):
                d = backend.random_bytes(SEED_SIZE)
                if p256_private_ok(d):
                    return cls(d, crypto=backend, algorithm=P256)
            raise ValidationError("the random source gave no usable P-256 scalar")
        return cls(backend.random_bytes(SEED_SIZE), crypto=backend)

    @classmethod
    def from_seed(cls, seed: bytes, crypto: CryptoBackend | None = None, *, algorithm: str = ED25519) -> Identity:
        return cls(seed, crypto=crypto, algorithm=algorithm)

    # --- public face --------------------------------------------------------------------

    @property
    def actor(self) -> bytes:
        """The public key as an actor id (32 bytes Ed25519, 35 bytes P-256): the actor in
        blocks and seals."""
        return self._actor

    @property
    def algorithm(self) -> str:
        """"ed25519" or "p256"."""
        return self._algorithm

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
        """64-byte signature over `message` (callers add their own domain label): Ed25519
        (deterministic) or ECDSA P-256 r ‖ s, low-S (randomised)."""
        if self._algorithm == P256:
            return self._crypto.p256_sign(self._seed, message)
        return self._crypto.ed25519_sign(self._seed, message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self._crypto.verify_actor(self._actor, message, signature)

    @staticmethod
    def verify_signature(actor: bytes, message: bytes, signature: bytes, crypto: CryptoBackend | None = None) -> bool:
        """True iff `signature` is `actor`'s signature over `message`, with the algorithm the
        actor id names. Never raises on bad input."""
        return _backend(crypto).verify_actor(actor, message, signature)

    def export_seed(self) -> bytes:
        """The 32-byte private key (Ed25519 seed or P-256 scalar). Whoever holds it can sign
        as this identity."""
        return self._seed

    def __repr__(self) -> str:
        alg = "" if self._algorithm == ED25519 else f", algorithm={self._algorithm!r}"
        return f"Identity(actor={self.actor_hex[:16]}…, fingerprint={self.fingerprint!r}{alg})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return self._algorithm == other._algorithm and hmac.compare_digest(self._seed, other._seed)

    def __hash__(self) -> int:
        return hash(self._actor)

    def __reduce__(self) -> NoReturn:
        # Refuse pickling: it would silently copy the private key into caches, queues, logs.
        raise TypeError("Identity objects are not picklable; use export_seed()/save() deliberately")

    # --- files --------------------------------------------------------------------------

    def _file_bytes(self) -> bytes:
        doc = {"actor": self.actor_hex, "format": FILE_FORMAT, "seed": self._seed.hex(), "version": FILE_VERSION}
        if self._algorithm != ED25519:
            doc["algorithm"] = self._algorithm
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
    def load_or_generate(cls, path: str | os.PathLike[str], *, crypto: CryptoBackend | None = None,
                         algorithm: str = ED25519) -> Identity:
        """Load `path`, or generate a new identity (of `algorithm`) and save it there if the
        file does not exist. An existing file keeps its own algorithm."""
        if os.path.lexists(os.fspath(path)):
            return cls.load(path, crypto=crypto)
        ident = cls.generate(crypto, algorithm=algorithm)
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
        algorithm = doc.get("algorithm", ED25519)
        if type(algorithm) is not str or algorithm not in ALGORITHMS:
            raise bad(f"unknown 'algorithm' {algorithm!r:.40}")
        if len(seed) != SEED_SIZE:
            raise bad(f"'seed' must be {SEED_SIZE} bytes")
        try:
            ident = cls(seed, crypto=crypto, algorithm=algorithm)
        except ValidationError as exc:
            raise bad(str(exc)) from None
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
