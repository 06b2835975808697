"""core/actors.py: actor ids of both algorithms, P-256 point decompression and the low-S rule.

Points and signatures are checked against `cryptography` (OpenSSL), an independent
implementation of the same curve arithmetic.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core import actors as A
from ostracon.core.errors import ValidationError

ED_ACTOR = bytes(range(32))


def _on_curve(x: int) -> bool:
    """Euler's criterion on x³ − 3x + b (independent of the module's square root)."""
    rhs = (x**3 - 3 * x + A.P256_B) % A.P256_P
    return rhs == 0 or pow(rhs, (A.P256_P - 1) // 2, A.P256_P) == 1


OFF_CURVE_X = next(x for x in range(1, 100) if not _on_curve(x))
ON_CURVE_X = next(x for x in range(1, 100) if _on_curve(x))


def _openssl_point(d: int, fmt: PublicFormat) -> bytes:
    return ec.derive_private_key(d, ec.SECP256R1()).public_key().public_bytes(Encoding.X962, fmt)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=A.P256_N - 1))
def test_decompression_matches_openssl(d):
    point = _openssl_point(d, PublicFormat.CompressedPoint)
    actor = A.p256_actor(point)
    assert actor == A.P256_PREFIX + point and len(actor) == A.P256_ACTOR_LEN
    assert A.algorithm_of(actor) == A.P256
    assert A.p256_point(actor) == point
    assert A.p256_uncompressed(actor) == _openssl_point(d, PublicFormat.UncompressedPoint)
    assert A.p256_compress(A.p256_uncompressed(actor)) == point


def test_decompression_without_the_cache_gives_the_same_point():
    point = _openssl_point(12345, PublicFormat.CompressedPoint)
    first = A.p256_uncompressed(A.p256_actor(point))
    A._points.clear()  # noqa: SLF001 - the cache must not change answers
    assert A.p256_uncompressed(A.p256_actor(point)) == first


def test_ed25519_actors_are_bare_32_byte_keys():
    assert A.algorithm_of(ED_ACTOR) == A.ED25519 and A.is_actor(ED_ACTOR)
    assert A.check_actor(ED_ACTOR) is ED_ACTOR


@pytest.mark.parametrize("bad", [
    b"", bytes(31), bytes(33), bytes(34), bytes(36), bytes(64),
    bytearray(32), "00" * 32, None, 5,
    A.P256_PREFIX + b"\x04" + bytes(32),                              # wrong parity byte
    A.P256_PREFIX + b"\x02" + A.P256_P.to_bytes(32, "big"),          # x = p: not reduced
    A.P256_PREFIX + b"\x03" + b"\xff" * 32,                          # x > p
    A.P256_PREFIX + b"\x02" + OFF_CURVE_X.to_bytes(32, "big"),      # no point has this x
    b"\x80\x25" + _openssl_point(7, PublicFormat.CompressedPoint),   # another multicodec
    b"\xed\x01" + bytes(33),
], ids=lambda b: repr(b)[:30])
def test_malformed_actor_ids_are_refused(bad):
    assert A.algorithm_of(bad) is None and not A.is_actor(bad)
    with pytest.raises(ValidationError):
        A.check_actor(bad)


def test_x_beyond_p_is_refused_even_when_x_mod_p_is_on_the_curve():
    # Find a small x on the curve; x + p fits in 32 bytes and must be refused (two encodings
    # of one point would give one key two actor ids).
    x = ON_CURVE_X
    assert A.is_actor(A.P256_PREFIX + b"\x02" + x.to_bytes(32, "big")) and x + A.P256_P < 2**256
    assert A.algorithm_of(A.P256_PREFIX + b"\x02" + (x + A.P256_P).to_bytes(32, "big")) is None


def test_helpers_refuse_what_is_not_p256():
    with pytest.raises(ValidationError):
        A.p256_point(ED_ACTOR)
    with pytest.raises(ValidationError):
        A.p256_actor(bytes(33))
    with pytest.raises(ValidationError):
        A.p256_compress(b"\x04" + bytes(64))  # (0, 0) is not on the curve
    with pytest.raises(ValidationError):
        A.p256_compress(_openssl_point(9, PublicFormat.CompressedPoint))


def _sig(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_low_s_rule():
    half = A.P256_N // 2
    assert A.p256_signature_ok(_sig(1, 1)) and A.p256_signature_ok(_sig(A.P256_N - 1, half))
    for r, s in [(0, 1), (1, 0), (A.P256_N, 1), (1, half + 1), (1, A.P256_N - 1), (2**256 - 1, 1)]:
        assert not A.p256_signature_ok(_sig(r, s)), (r, s)
    assert not A.p256_signature_ok(_sig(1, 1)[:63]) and not A.p256_signature_ok(bytearray(_sig(1, 1)))
    assert A.p256_low_s(_sig(5, half + 1)) == _sig(5, A.P256_N - half - 1)
    assert A.p256_low_s(_sig(5, 7)) == _sig(5, 7)
    with pytest.raises(ValidationError):
        A.p256_low_s(b"short")


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=A.P256_N - 1), st.integers(min_value=1, max_value=A.P256_N - 1))
def test_low_s_normalisation_is_idempotent_and_lands_in_range(r, s):
    low = A.p256_low_s(_sig(r, s))
    assert A.p256_signature_ok(low) and A.p256_low_s(low) == low
    assert int.from_bytes(low[32:], "big") in (s, A.P256_N - s)


def test_private_scalar_range():
    assert A.p256_private_ok(bytes(31) + b"\x01")
    assert A.p256_private_ok((A.P256_N - 1).to_bytes(32, "big"))
    for bad in (bytes(32), A.P256_N.to_bytes(32, "big"), b"\xff" * 32, bytes(31), bytearray(32)):
        assert not A.p256_private_ok(bad)


def test_short_display_skips_the_shared_prefix():
    actor = A.p256_actor(_openssl_point(7, PublicFormat.CompressedPoint))
    assert A.short_actor(actor.hex()) == "p256:" + actor[3:9].hex()
    assert A.short_actor(ED_ACTOR.hex()) == ED_ACTOR.hex()[:12]
