"""The CryptoBackend contract suite: every backend (native `cryptography`, browser WebCrypto)
must pass every check here, so both produce byte-identical signatures, ciphertext and keys
(ECDSA P-256 signatures are randomised: checked by verification and form, not bytes).

Plain Python, no pytest import: the browser runtime imports this module under Pyodide and
calls the checks itself. Each check takes a zero-argument factory returning a fresh backend;
`run_all(factory)` runs them all and returns the names that passed (raising on the first
failure). Known-answer vectors are copied from their RFCs / the GCM specification.

`check_vectors(factory, vectors)` replays tests/vectors/crypto.json (Ostracon's own derived
values: identity, space keys, room id, invite, frame bytes) against a backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from ostracon.core.errors import CryptoError, OstraconError, ValidationError

h = bytes.fromhex

VECTORS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors", "crypto.json")

# --- RFC 8032 §7.1 (Ed25519) ----------------------------------------------------------------
ED25519_VECTORS = [
    # (secret seed, public key, message, signature)
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (  # TEST SHA(abc): the message is SHA-512("abc")
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]

# --- AES-256-GCM: McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16 ---
_K15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
_P15 = (
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
_C15 = (
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)
AES_GCM_VECTORS = [
    # (key, nonce, plaintext, aad, ciphertext, tag)
    ("00" * 32, "00" * 12, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    ("00" * 32, "00" * 12, "00" * 16, "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
    (_K15, "cafebabefacedbaddecaf888", _P15, "", _C15, "b094dac5d93471bdec1a502270e3cc6c"),
    (
        _K15,
        "cafebabefacedbaddecaf888",
        _P15[:120],
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        _C15[:120],
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
]

# --- RFC 5869 Appendix A (HKDF-SHA256), test cases 1-3 --------------------------------------
HKDF_VECTORS = [
    # (ikm, salt, info, length, okm)
    (
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        "0b" * 22,
        "",
        "",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]

# --- PBKDF2-HMAC-SHA256: RFC 7914 §11, and the widely used "password"/"salt" vectors ---------
PBKDF2_VECTORS = [
    # (password, salt, iterations, length, derived key)
    (
        b"passwd",
        b"salt",
        1,
        64,
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
    ),
    (
        b"Password",
        b"NaCl",
        80000,
        64,
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
    ),
    (b"password", b"salt", 1, 32, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"),
    (b"password", b"salt", 2, 32, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"),
    (b"password", b"salt", 4096, 32, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"),
]


class ContractFailure(AssertionError):
    pass


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise ContractFailure(what)


def _raises(exc: type[BaseException], fn: Callable[[], object], what: str) -> BaseException:
    try:
        fn()
    except exc as e:
        return e
    except BaseException as e:  # noqa: BLE001 - the wrong exception type is the failure reported
        raise ContractFailure(f"{what}: expected {exc.__name__}, got {type(e).__name__}: {e}") from e
    raise ContractFailure(f"{what}: expected {exc.__name__}, nothing was raised")


# --- checks -------------------------------------------------------------------------------

def check_ed25519_rfc8032(make) -> None:
    b = make()
    for seed, pub, msg, sig in ED25519_VECTORS:
        _expect(b.ed25519_public_key(h(seed)) == h(pub), f"public key of RFC 8032 seed {seed[:8]}")
        _expect(b.ed25519_sign(h(seed), h(msg)) == h(sig), f"signature of RFC 8032 seed {seed[:8]}")
        _expect(b.ed25519_verify(h(pub), h(msg), h(sig)) is True, f"verify RFC 8032 seed {seed[:8]}")


def check_ed25519_rejects(make) -> None:
    b = make()
    seed, pub, msg, sig = (h(x) for x in ED25519_VECTORS[2])
    # Every single-bit flip of the signature, the message and the key must fail verification.
    for i in range(len(sig) * 8):
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        _expect(b.ed25519_verify(pub, msg, bytes(bad)) is False, f"flipped signature bit {i} verified")
    for i in range(len(msg) * 8):
        bad = bytearray(msg)
        bad[i // 8] ^= 1 << (i % 8)
        _expect(b.ed25519_verify(pub, bytes(bad), sig) is False, f"flipped message bit {i} verified")
    other_pub = h(ED25519_VECTORS[0][1])
    _expect(b.ed25519_verify(other_pub, msg, sig) is False, "signature verified under another key")
    # Malformed inputs answer False, never raise.
    for args in [
        (pub[:31], msg, sig),
        (pub + b"\x00", msg, sig),
        (pub, msg, sig[:63]),
        (pub, msg, sig + b"\x00"),
        (b"", b"", b""),
        (b"\xff" * 32, msg, sig),  # not a valid point encoding
        (pub, msg, b"\xff" * 64),  # S >= L: non-canonical
        (None, msg, sig),
        (pub, None, sig),
        (pub, msg, "not bytes"),
    ]:
        try:
            ok = b.ed25519_verify(*args)
        except Exception as e:  # noqa: BLE001
            raise ContractFailure(f"ed25519_verify raised {type(e).__name__} for malformed input") from e
        _expect(ok is False, "ed25519_verify accepted malformed input")


def check_ed25519_validation(make) -> None:
    b = make()
    for bad in (b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 64):
        _raises(ValidationError, lambda: b.ed25519_public_key(bad), f"public key of a {len(bad)}-byte seed")
        _raises(ValidationError, lambda: b.ed25519_sign(bad, b"m"), f"sign with a {len(bad)}-byte seed")
    _raises(ValidationError, lambda: b.ed25519_sign("x" * 32, b"m"), "sign with a str seed")
    # Deterministic: the same seed and message give the same signature, accepted inputs are bytes-likes.
    seed = bytes(range(32))
    _expect(b.ed25519_sign(seed, b"abc") == b.ed25519_sign(bytearray(seed), bytearray(b"abc")), "bytearray inputs")


def check_aes_gcm_vectors(make) -> None:
    b = make()
    for key, nonce, pt, aad, ct, tag in AES_GCM_VECTORS:
        out = b.aes_gcm_encrypt(h(key), h(nonce), h(pt), h(aad))
        _expect(out == h(ct) + h(tag), f"AES-GCM ciphertext for key {key[:8]} pt {len(pt) // 2} bytes")
        _expect(b.aes_gcm_decrypt(h(key), h(nonce), out, h(aad)) == h(pt), "AES-GCM decrypt of the vector")


def check_aes_gcm_rejects(make) -> None:
    b = make()
    key, nonce, pt, aad, ct, tag = (h(x) for x in AES_GCM_VECTORS[3])
    sealed = ct + tag
    for i in range(len(sealed) * 8):
        bad = bytearray(sealed)
        bad[i // 8] ^= 1 << (i % 8)
        _raises(CryptoError, lambda: b.aes_gcm_decrypt(key, nonce, bytes(bad), aad), f"flipped ciphertext bit {i}")
    for i in range(len(aad)):
        bad = bytearray(aad)
        bad[i] ^= 0x01
        _raises(CryptoError, lambda: b.aes_gcm_decrypt(key, nonce, sealed, bytes(bad)), f"flipped aad byte {i}")
    _raises(CryptoError, lambda: b.aes_gcm_decrypt(key, nonce, sealed, aad + b"x"), "extended aad")
    wrong_key = bytes(32)
    _raises(CryptoError, lambda: b.aes_gcm_decrypt(wrong_key, nonce, sealed, aad), "wrong key")
    wrong_nonce = bytes(12)
    _raises(CryptoError, lambda: b.aes_gcm_decrypt(key, wrong_nonce, sealed, aad), "wrong nonce")
    for n in range(len(sealed)):
        _raises(CryptoError, lambda: b.aes_gcm_decrypt(key, nonce, sealed[:n], aad), f"truncated to {n} bytes")
    # The error must not be a WrongKeyError (that one is reserved for key commitment checks).
    e = _raises(CryptoError, lambda: b.aes_gcm_decrypt(wrong_key, nonce, sealed, aad), "wrong key")
    _expect(type(e).__name__ == "CryptoError", "tag failure raises plain CryptoError")


def check_aes_gcm_validation(make) -> None:
    b = make()
    for klen in (0, 16, 24, 31, 33):
        _raises(ValidationError, lambda: b.aes_gcm_encrypt(bytes(klen), bytes(12), b"", b""), f"{klen}-byte key")
        _raises(ValidationError, lambda: b.aes_gcm_decrypt(bytes(klen), bytes(12), bytes(16), b""), f"{klen}-byte key")
    for nlen in (0, 8, 11, 13, 16):
        _raises(ValidationError, lambda: b.aes_gcm_encrypt(bytes(32), bytes(nlen), b"", b""), f"{nlen}-byte nonce")
        _raises(ValidationError, lambda: b.aes_gcm_decrypt(bytes(32), bytes(nlen), bytes(16), b""),
                f"{nlen}-byte nonce")
    _raises(ValidationError, lambda: b.aes_gcm_encrypt(bytes(32), bytes(12), "text", b""), "str plaintext")
    # Output is ciphertext || 16-byte tag, same length as the plaintext + 16, for many lengths.
    for n in (0, 1, 15, 16, 17, 1000, 65537):
        pt = bytes((i * 7) & 0xFF for i in range(n))
        out = b.aes_gcm_encrypt(bytes(32), bytes(12), pt, b"aad")
        _expect(len(out) == n + 16, f"AES-GCM output length for {n} bytes")
        _expect(b.aes_gcm_decrypt(bytes(32), bytes(12), out, b"aad") == pt, f"AES-GCM round trip of {n} bytes")


def check_hkdf_rfc5869(make) -> None:
    b = make()
    for ikm, salt, info, length, okm in HKDF_VECTORS:
        _expect(b.hkdf_sha256(h(ikm), h(salt), h(info), length) == h(okm), f"HKDF vector L={length} salt={salt[:6]!r}")
    # Prefix property: a shorter output is a prefix of a longer one.
    _expect(b.hkdf_sha256(b"k", b"", b"i", 16) == b.hkdf_sha256(b"k", b"", b"i", 32)[:16], "HKDF prefix property")
    for bad in (0, -1, 255 * 32 + 1):
        _raises(ValidationError, lambda: b.hkdf_sha256(b"k", b"", b"i", bad), f"HKDF length {bad}")
    _expect(len(b.hkdf_sha256(b"k", b"", b"i", 255 * 32)) == 255 * 32, "HKDF maximum length")


def check_pbkdf2_vectors(make) -> None:
    b = make()
    for pw, salt, it, length, dk in PBKDF2_VECTORS:
        _expect(b.pbkdf2_sha256(pw, salt, it, length) == h(dk), f"PBKDF2 {pw!r}/{salt!r} c={it}")
    for bad in (0, -5):
        _raises(ValidationError, lambda: b.pbkdf2_sha256(b"p", b"s", bad, 32), f"PBKDF2 iterations {bad}")
        _raises(ValidationError, lambda: b.pbkdf2_sha256(b"p", b"s", 1, bad), f"PBKDF2 length {bad}")
    _raises(ValidationError, lambda: b.pbkdf2_sha256(b"p", b"s", 2**31, 32), "PBKDF2 iterations beyond 2**31-1")


def check_random_bytes(make) -> None:
    b = make()
    _expect(b.random_bytes(0) == b"", "random_bytes(0)")
    seen = set()
    for n in (1, 12, 16, 32, 1000):
        out = b.random_bytes(n)
        _expect(isinstance(out, bytes) and len(out) == n, f"random_bytes({n}) length")
        seen.add(b.random_bytes(32))
    # 5 draws of 256 bits colliding means the source is not random (probability ~2**-250).
    _expect(len(seen) == 5, "random_bytes repeats itself")
    _raises(ValidationError, lambda: b.random_bytes(-1), "random_bytes(-1)")


def check_x25519_rfc7748(make) -> None:
    """RFC 7748 §6.1: Alice's and Bob's key pairs and their shared secret; a low-order peer
    key (all zeros) is refused with CryptoError, a wrong-size key with ValidationError."""
    from ostracon.core.errors import CryptoError, ValidationError

    b = make()
    a_priv = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b_priv = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    a_pub, b_pub = b.x25519_public_key(a_priv), b.x25519_public_key(b_priv)
    _expect(a_pub == h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"), "x25519 alice public")
    _expect(b_pub == h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), "x25519 bob public")
    shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    _expect(b.x25519(a_priv, b_pub) == shared == b.x25519(b_priv, a_pub), "x25519 shared secret")
    for bad, err in ((bytes(32), CryptoError), (bytes(31), ValidationError)):
        try:
            b.x25519(a_priv, bad)
        except err:
            pass
        else:
            raise AssertionError(f"x25519 with peer {bad.hex()} must raise {err.__name__}")


# --- ECDSA P-256 / SHA-256: RFC 6979 A.2.5 (key pair; its signatures used as verify vectors) ---
P256_PRIVATE = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
P256_PUBLIC = "0360fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"  # compressed Ux, Uy odd
P256_SIGNATURES = [
    # (message, r ‖ s) from RFC 6979 with SHA-256; "sample" has a high s, "test" a low one.
    ("sample", "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
               "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"),
    ("test", "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367"
             "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"),
]


def check_p256_rfc6979(make) -> None:
    """The RFC 6979 key pair; its low-S signature verifies, its high-S one only once
    normalised (core/actors.py: Ostracon accepts low-S only)."""
    from ostracon.core.actors import p256_low_s

    b = make()
    _expect(b.p256_public_key(h(P256_PRIVATE)) == h(P256_PUBLIC), "P-256 public key of the RFC 6979 key")
    for msg, sig in P256_SIGNATURES:
        low = p256_low_s(h(sig))
        _expect(b.p256_verify(h(P256_PUBLIC), msg.encode(), low) is True, f"low-S RFC 6979 signature of {msg!r}")
        _expect(b.p256_verify(h(P256_PUBLIC), msg.encode(), h(sig)) is (low == h(sig)),
                f"RFC 6979 signature of {msg!r}: high-S must be refused")


def check_p256_sign_verify(make) -> None:
    """Signatures are 64 bytes, low-S, randomised, verify (also through verify_actor with the
    P-256 actor id) and fail for another message, key or a flipped bit."""
    from ostracon.core.actors import P256_PREFIX, p256_signature_ok

    b = make()
    d, pub = h(P256_PRIVATE), h(P256_PUBLIC)
    msg = b"ostracon/seal/v1\x00p256"
    sigs = [b.p256_sign(d, msg) for _ in range(3)]
    for sig in sigs:
        _expect(type(sig) is bytes and len(sig) == 64 and p256_signature_ok(sig), "P-256 signature is low-S r ‖ s")
        _expect(b.p256_verify(pub, msg, sig) is True, "own P-256 signature verifies")
        _expect(b.verify_actor(P256_PREFIX + pub, msg, sig) is True, "verify_actor with a P-256 actor")
        _expect(b.verify_actor(pub[1:], msg, sig) is False, "a P-256 signature under an Ed25519-shaped actor")
        _expect(b.p256_verify(pub, msg + b"x", sig) is False, "P-256 signature of another message")
    _expect(len(set(sigs)) == 3, "ECDSA signatures are randomised")
    other = b.p256_public_key(bytes(31) + b"\x07")
    _expect(b.p256_verify(other, msg, sigs[0]) is False, "P-256 signature under another key")
    for i in range(0, 512, 7):
        bad = bytearray(sigs[0])
        bad[i // 8] ^= 1 << (i % 8)
        _expect(b.p256_verify(pub, msg, bytes(bad)) is False, f"flipped P-256 signature bit {i} verified")
    seed, epub, _, esig = (h(x) for x in ED25519_VECTORS[1])
    _expect(b.verify_actor(epub, b"\x72", esig) is True, "verify_actor with an Ed25519 actor")
    _expect(b.verify_actor(P256_PREFIX + pub, b"\x72", esig) is False, "an Ed25519 signature under a P-256 actor")


def check_p256_rejects(make) -> None:
    """Malformed P-256 input answers False (verify) or raises ValidationError (keys)."""
    from ostracon.core.actors import P256_N, P256_P

    b = make()
    d, pub = h(P256_PRIVATE), h(P256_PUBLIC)
    msg = b"m"
    sig = b.p256_sign(d, msg)
    n32 = P256_N.to_bytes(32, "big")
    for args in [
        (pub[:32], msg, sig), (pub + b"\x00", msg, sig), (pub, msg, sig[:63]), (pub, msg, sig + b"\x00"),
        (b"\x04" + pub[1:], msg, sig),                       # not a compressed point
        (b"\x02" + P256_P.to_bytes(32, "big"), msg, sig),    # x = p: not reduced
        (b"\x03" + b"\xff" * 32, msg, sig),                 # x > p
        (pub, msg, bytes(32) + sig[32:]), (pub, msg, sig[:32] + bytes(32)),  # r = 0, s = 0
        (pub, msg, n32 + sig[32:]),                           # r = n
        (pub, msg, sig[:32] + (P256_N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")),  # high-S twin
        (None, msg, sig), (pub, None, sig), (pub, msg, "not bytes"), (b"", b"", b""),
    ]:
        try:
            ok = b.p256_verify(*args)
        except Exception as e:  # noqa: BLE001
            raise ContractFailure(f"p256_verify raised {type(e).__name__} for malformed input") from e
        _expect(ok is False, "p256_verify accepted malformed input")
    for bad in (b"", bytes(31), bytes(33), bytes(32), n32, b"\xff" * 32):
        what = f"{bad.hex()[:8]}… ({len(bad)} bytes)"
        _raises(ValidationError, lambda: b.p256_public_key(bad), f"P-256 public key of {what}")
        _raises(ValidationError, lambda: b.p256_sign(bad, b"m"), f"P-256 sign with {what}")


def check_error_types(make) -> None:
    # Every error a backend raises on purpose is an OstraconError (callers catch one root).
    b = make()
    e = _raises(OstraconError, lambda: b.aes_gcm_encrypt(b"short", bytes(12), b"", b""), "bad key")
    _expect(isinstance(e, ValidationError), "bad key is a ValidationError")


CHECKS: dict[str, Callable] = {
    "ed25519_rfc8032": check_ed25519_rfc8032,
    "ed25519_rejects": check_ed25519_rejects,
    "ed25519_validation": check_ed25519_validation,
    "aes_gcm_vectors": check_aes_gcm_vectors,
    "aes_gcm_rejects": check_aes_gcm_rejects,
    "aes_gcm_validation": check_aes_gcm_validation,
    "hkdf_rfc5869": check_hkdf_rfc5869,
    "pbkdf2_vectors": check_pbkdf2_vectors,
    "random_bytes": check_random_bytes,
    "x25519_rfc7748": check_x25519_rfc7748,
    "p256_rfc6979": check_p256_rfc6979,
    "p256_sign_verify": check_p256_sign_verify,
    "p256_rejects": check_p256_rejects,
    "error_types": check_error_types,
}


def run_all(make) -> list[str]:
    passed = []
    for name, check in CHECKS.items():
        check(make)
        passed.append(name)
    return passed


# --- Ostracon's own vectors (tests/vectors/crypto.json) -----------------------------------

def load_vectors(path: str = VECTORS_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def compute_vectors(make, inputs: dict) -> dict:
    """Everything the JSON pins, computed from its inputs with this backend."""
    from ostracon.core.protocol import frames as F
    from ostracon.crypto.identity import Identity
    from ostracon.crypto.space import Space

    b = make()
    out: dict = {}
    ident = Identity.from_seed(h(inputs["identity_seed"]), crypto=b)
    out["identity"] = {
        "actor": ident.actor_hex,
        "fingerprint": ident.fingerprint,
        "signature": ident.sign(h(inputs["message"])).hex(),
    }
    sp = Space.from_key(h(inputs["space_key"]), inputs["space_name"], crypto=b)
    out["space"] = {
        "room_id": sp.room_id,
        "frame_key": sp.frame_key.hex(),
        "commit_key": sp.commit_key.hex(),
        "commitment": sp.frame_keys().commitment.hex(),
        "invite": sp.invite(inputs["relay_url"]),
    }
    pp = inputs["passphrase"]
    derived = Space.from_passphrase(
        pp["passphrase"], pp["name"], iterations=pp["iterations"], crypto=b,
        _insecure_for_tests=pp["iterations"] < 600_000,
    )
    out["passphrase"] = {"salt": derived.kdf.salt.hex(), "key": derived.export_key().hex(), "room_id": derived.room_id}
    frames = []
    for fr in inputs["frames"]:
        sealed = F.seal_frame(
            sp.frame_keys(),
            b,
            sender=h(fr["sender"]),
            counter=int(fr["counter"], 16),
            nonce=h(fr["nonce"]),
            payload=h(fr["payload"]),
        )
        frames.append(sealed.hex())
    out["frames"] = frames
    return out


def check_vectors(make, vectors: dict | None = None) -> None:
    """Compute every pinned value with this backend and compare it to the JSON; also open the
    pinned frames (so a backend that only decrypts correctly is caught too)."""
    from ostracon.core.protocol import frames as F
    from ostracon.crypto.space import Space

    vectors = vectors if vectors is not None else load_vectors()
    got = compute_vectors(make, vectors["inputs"])
    want = vectors["expected"]
    for section in ("identity", "space", "passphrase"):
        for k, v in want[section].items():
            _expect(got[section][k] == v, f"vector {section}.{k}: got {got[section][k]!r}, want {v!r}")
    _expect(got["frames"] == want["frames"], "vector frames differ")
    b = make()
    keys = Space.from_key(h(vectors["inputs"]["space_key"]), crypto=b).frame_keys()
    for fr, sealed in zip(vectors["inputs"]["frames"], want["frames"], strict=False):
        opened = F.open_frame(keys, b, h(sealed))
        _expect(opened.payload == h(fr["payload"]) and opened.counter == int(fr["counter"], 16), "pinned frame opens")
    inv = Space.from_invite(want["space"]["invite"], crypto=b)
    _expect(inv.export_key() == h(vectors["inputs"]["space_key"]), "pinned invite carries the key")


VECTOR_INPUTS = {
    "identity_seed": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "message": b"ostracon/seal/v1\x00example".hex(),
    "space_key": bytes(range(32)).hex(),
    "space_name": "family photos",
    "relay_url": "wss://relay.example.org/ostracon",
    "passphrase": {"passphrase": "correct horse battery staple", "name": "family photos", "iterations": 600_000},
    "frames": [
        # Counters are hex strings: JSON numbers above 2**53 do not survive JavaScript.
        {"sender": "11" * 16, "counter": "0000000000000000", "nonce": "22" * 12, "payload": ""},
        {"sender": "11" * 16, "counter": "0000000000000001", "nonce": "33" * 12, "payload": b"hello, relay".hex()},
        {"sender": "aa" * 16, "counter": "ffffffffffffffff", "nonce": "44" * 12, "payload": bytes(range(256)).hex()},
    ],
}


def write_vectors(make, path: str = VECTORS_PATH) -> None:
    """Regenerate tests/vectors/crypto.json (only when a format deliberately changes:
    run `python tests/crypto_contract.py --write` and say so in the change)."""
    doc = {
        "about": "Ostracon crypto vectors: replay natively and under Pyodide (tests/crypto_contract.py check_vectors).",
        "inputs": VECTOR_INPUTS,
        "expected": compute_vectors(make, VECTOR_INPUTS),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
    from ostracon.crypto.native import NativeCrypto

    if "--write" in sys.argv:
        write_vectors(NativeCrypto)
        print("wrote", VECTORS_PATH)
    else:
        print("passed:", ", ".join(run_all(NativeCrypto)))
        check_vectors(NativeCrypto)
        print("vectors ok")
