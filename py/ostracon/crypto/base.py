"""The crypto backend contract. Native: `cryptography`. Browser: WebCrypto through the JS bridge.

Both backends must produce byte-identical Ed25519 signatures and AES-GCM ciphertext for the
same inputs (tests/test_crypto_contract.py + shared vectors). Randomness is the only
non-deterministic call and is isolated in `random_bytes` so tests can replace it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..core.errors import ValidationError


class CryptoBackend(ABC):
    name: str = "abstract"

    @abstractmethod
    def ed25519_public_key(self, seed: bytes) -> bytes:
        """32-byte public key for a 32-byte private seed."""

    @abstractmethod
    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        """64-byte signature (Ed25519 is deterministic)."""

    @abstractmethod
    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """True iff the signature is valid; never raises for bad input."""

    @abstractmethod
    def aes_gcm_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """ciphertext || 16-byte tag."""

    @abstractmethod
    def aes_gcm_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Plaintext, or raise CryptoError if the tag does not verify."""

    @abstractmethod
    def hkdf_sha256(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes: ...

    @abstractmethod
    def pbkdf2_sha256(self, password: bytes, salt: bytes, iterations: int, length: int) -> bytes: ...

    @abstractmethod
    def random_bytes(self, n: int) -> bytes: ...

    # X25519 (RFC 7748) wraps space keys to members (crypto/members.py). Not abstract so a
    # backend without it still serves everything else; it then refuses with CryptoError.

    def x25519_public_key(self, private_key: bytes) -> bytes:
        """32-byte X25519 public key for a 32-byte private key (clamped as RFC 7748 says)."""
        from ..core.errors import CryptoError
        raise CryptoError(f"the {self.name} backend has no X25519")

    def x25519(self, private_key: bytes, peer_public_key: bytes) -> bytes:
        """32-byte shared secret; CryptoError for a low-order peer key (all-zero output)."""
        from ..core.errors import CryptoError
        raise CryptoError(f"the {self.name} backend has no X25519")


# ---- argument checks shared by every backend (the same errors natively and in the browser)

def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ValidationError(f"{what} must be bytes, not {type(value).__name__}")


def _exact(value: object, size: int, what: str) -> bytes:
    b = _as_bytes(value, what)
    if len(b) != size:
        raise ValidationError(f"{what} must be {size} bytes, got {len(b)}")
    return b


def _length(n: object, what: str, maximum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValidationError(f"{what} must be an int, not {type(n).__name__}")
    if not 1 <= n <= maximum:
        raise ValidationError(f"{what} must be between 1 and {maximum}, got {n}")
    return n


def _verify_args_ok(public_key: object, message: object, signature: object) -> bool:
    """Shape check before a verify: the contract is to answer False, never to raise."""
    buf = (bytes, bytearray, memoryview)
    return (isinstance(public_key, buf) and len(public_key) == 32
            and isinstance(signature, buf) and len(signature) == 64 and isinstance(message, buf))
