"""WebCrypto backend for the browser (Pyodide only), through web/bridge.js (web/webcrypto.js).

WebCrypto is asynchronous and `CryptoBackend` is synchronous: every call blocks on its promise
with `pyodide.ffi.run_sync`, which needs JS Promise Integration (JSPI; Chromium, or Node 20
with ``--experimental-wasm-stack-switching``) and Python entered through `runPythonAsync` or
`PyProxy.callPromising` (web/worker.js enters every RPC that way). One switch costs
~0.3 ms, so the engine's "one seal per batch" design (docs/ARCHITECTURE.md) matters here.

Outputs are byte-identical to the native `cryptography` backend: Ed25519 is deterministic
and AES-GCM is a function of (key, nonce, plaintext, aad). ECDSA P-256 is randomised: each
backend verifies the other's signatures (both sign low-S, both refuse high-S). `random_bytes` is
`os.urandom`: under Pyodide it is Emscripten's `getentropy`, which fills the bytes with
`crypto.getRandomValues` (Node: `crypto.randomFillSync`) from inside the wasm call, with no
proxy crossing (the bridge's `randomBytes` cost ~8x as much per call, and the engine draws
random bytes for every new document id). It keeps no state, so a memory snapshot of the
interpreter (snapshot.py) never replays randomness. `sha256` is done by hashlib.

Imported CryptoKeys are cached in the bridge (bounded), so repeated signatures with one seed
or encryptions with one space key do not re-import the key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from ...core.actors import P256_PREFIX, p256_compress, p256_low_s, p256_uncompressed
from ...core.errors import CryptoError, ValidationError
from ...crypto.base import (
    ED25519_SEED_SIZE,
    HKDF_MAX_LENGTH,
    PBKDF2_MAX_ITERATIONS,
    PBKDF2_MAX_LENGTH,
    X25519_KEY_SIZE,
    CryptoBackend,
    _as_bytes,
    _exact,
    _gcm_args,
    _gcm_decrypt_args,
    _injected_random,
    _length,
    _p256_private,
    _p256_verify_args_ok,
    _random_count,
    _verify_args_ok,
)
from . import bridge as _bridge_mod


def _bridge() -> Any:
    return _bridge_mod.load(CryptoError)


class WebCrypto(CryptoBackend):
    """CryptoBackend on the browser's WebCrypto (through web/bridge.js)."""

    name = "webcrypto"

    def __init__(self, random_bytes: Callable[[int], bytes] | None = None) -> None:
        # Randomness is the only non-deterministic call; tests inject a seeded source here.
        self._b = _bridge()
        from pyodide.ffi import (  # the hot path is per call
            can_run_sync,
            run_sync,
            to_js,
        )

        self._can_run_sync = can_run_sync
        self._run_sync = run_sync
        self._to_js = to_js
        self._random = random_bytes

    def __repr__(self) -> str:
        return f"WebCrypto(random={'crypto.getRandomValues' if self._random is None else 'injected'})"

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        if not self._can_run_sync():
            raise CryptoError(
                f"{what}: WebCrypto is async; enter Python through runPythonAsync/callPromising "
                "with JSPI enabled"
            )
        # The gate (bridge.py): nothing enters the engine while this stack waits.
        with _bridge_mod.gate(CryptoError):
            try:
                return self._run_sync(fn(*(self._to_js(a) if type(a) is bytes else a for a in args)))
            except (CryptoError, ValidationError):
                raise
            except Exception as e:
                # The bridge already prefixes its CryptoErrors with what failed.
                msg = getattr(e, "message", None) or str(e)
                if getattr(e, "name", None) != "CryptoError":
                    msg = f"{what}: {msg}"
                raise CryptoError(msg) from None

    # --- Ed25519 ----------------------------------------------------------------------

    def ed25519_public_key(self, seed: bytes) -> bytes:
        seed_b = _exact(seed, ED25519_SEED_SIZE, "Ed25519 seed")
        return self._call("ed25519 public key", self._b.ed25519PublicKey, seed_b).to_bytes()

    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        seed_b = _exact(seed, ED25519_SEED_SIZE, "Ed25519 seed")
        msg = _as_bytes(message, "message")
        return self._call("ed25519 sign", self._b.ed25519Sign, seed_b, msg).to_bytes()

    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        # Contract: never raises for bad input, only answers.
        if not _verify_args_ok(public_key, message, signature):
            return False
        try:
            return bool(self._call("ed25519 verify", self._b.ed25519Verify, bytes(public_key),
                                   bytes(message), bytes(signature)))
        except CryptoError:
            return False

    # --- ECDSA P-256 / SHA-256 ---------------------------------------------------------

    def p256_public_key(self, private_key: bytes) -> bytes:
        d = _p256_private(private_key)
        return p256_compress(self._call("p256 public key", self._b.p256PublicKey, d).to_bytes())

    def p256_sign(self, private_key: bytes, message: bytes) -> bytes:
        d = _p256_private(private_key)
        msg = _as_bytes(message, "message")
        sig = self._call("p256 sign", self._b.p256Sign, d, msg).to_bytes()
        return p256_low_s(sig)  # WebCrypto returns either s; Ostracon accepts only low-S

    def p256_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        # Contract: never raises for bad input, only answers. The bridge gets the uncompressed
        # point: not every WebCrypto imports compressed ones.
        if not _p256_verify_args_ok(public_key, message, signature):
            return False
        try:
            full = p256_uncompressed(P256_PREFIX + bytes(public_key))
            return bool(self._call("p256 verify", self._b.p256Verify, full, bytes(message), bytes(signature)))
        except (CryptoError, ValidationError):
            return False

    # --- AES-256-GCM --------------------------------------------------------------------

    def aes_gcm_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        key_b, nonce_b, pt, aad_b = _gcm_args(key, nonce, plaintext, "plaintext", aad)
        return self._call("aes-gcm encrypt", self._b.aesGcmEncrypt, key_b, nonce_b, pt, aad_b).to_bytes()

    def aes_gcm_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        key_b, nonce_b, ct, aad_b = _gcm_decrypt_args(key, nonce, ciphertext, aad)
        try:
            return self._call("aes-gcm decrypt", self._b.aesGcmDecrypt, key_b, nonce_b, ct, aad_b).to_bytes()
        except CryptoError:
            # WebCrypto says only "OperationError"; say what it means, like the native backend.
            raise CryptoError("AES-GCM tag does not verify (wrong key, or tampered data)") from None

    # --- KDFs ---------------------------------------------------------------------------

    def hkdf_sha256(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
        n = _length(length, "HKDF length", HKDF_MAX_LENGTH)
        # An empty salt is HMAC'd as HashLen zero bytes by both WebCrypto and RFC 5869.
        return self._call("hkdf", self._b.hkdfSha256, _as_bytes(ikm, "HKDF input key"),
                          _as_bytes(salt, "HKDF salt"), _as_bytes(info, "HKDF info"), n).to_bytes()

    def pbkdf2_sha256(self, password: bytes, salt: bytes, iterations: int, length: int) -> bytes:
        it = _length(iterations, "PBKDF2 iterations", PBKDF2_MAX_ITERATIONS)
        n = _length(length, "PBKDF2 length", PBKDF2_MAX_LENGTH)
        return self._call("pbkdf2", self._b.pbkdf2Sha256, _as_bytes(password, "password"),
                          _as_bytes(salt, "salt"), it, n).to_bytes()

    # --- X25519 -----------------------------------------------------------------------

    def x25519_public_key(self, private_key: bytes) -> bytes:
        priv = _exact(private_key, X25519_KEY_SIZE, "X25519 private key")
        return self._call("x25519 public key", self._b.x25519PublicKey, priv).to_bytes()

    def x25519(self, private_key: bytes, peer_public_key: bytes) -> bytes:
        priv = _exact(private_key, X25519_KEY_SIZE, "X25519 private key")
        peer = _exact(peer_public_key, X25519_KEY_SIZE, "X25519 public key")
        return self._call("x25519", self._b.x25519, priv, peer).to_bytes()

    def sha256(self, data: bytes) -> bytes:
        # hashlib's sha256 is built into Pyodide and synchronous: no bridge round trip.
        return hashlib.sha256(_as_bytes(data, "data")).digest()

    # --- randomness ---------------------------------------------------------------------

    def random_bytes(self, n: int) -> bytes:
        n = _random_count(n)
        if self._random is not None:
            return _injected_random(self._random, n)
        if n == 0:
            return b""
        return os.urandom(n)  # crypto.getRandomValues inside the wasm call (module docstring)
