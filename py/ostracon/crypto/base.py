"""The crypto backend contract. Native: `cryptography`. Browser: WebCrypto through the JS bridge.

Both backends must produce byte-identical Ed25519 signatures and AES-GCM ciphertext for the
same inputs (tests/test_crypto_contract.py + shared vectors). Randomness is the only
non-deterministic call and is isolated in `random_bytes` so tests can replace it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


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
