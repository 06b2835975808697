"""CIDv1 (messagepack codec, sha2-256, base32 lower): format/parse, pinned values, and a
check against an independent implementation of varints and RFC 4648 base32 written here."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core import cid as cidlib
from ostracon.core.encoding import encode
from ostracon.core.errors import CorruptBlockError, ValidationError

# ----------------------------------------------------------------------------- independent impl

B32 = "abcdefghijklmnopqrstuvwxyz234567"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def b32_lower(data: bytes) -> str:
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(B32[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))


def b32_lower_decode(text: str) -> bytes:
    bits = "".join(f"{B32.index(c):05b}" for c in text)
    usable = len(bits) // 8 * 8
    assert set(bits[usable:]) <= {"0"}, "non-zero padding bits"
    return bytes(int(bits[i:i + 8], 2) for i in range(0, usable, 8))


def reference_cid_text(block: bytes) -> str:
    raw = varint(1) + varint(0x0201) + varint(0x12) + varint(32) + hashlib.sha256(block).digest()
    return "b" + b32_lower(raw)


def parse_multibase_cid(text: str) -> dict:
    """Independent CIDv1 parser: multibase 'b' → version, codec, multihash."""
    assert text[0] == "b"
    raw = b32_lower_decode(text[1:])
    version, i = read_varint(raw, 0)
    codec, i = read_varint(raw, i)
    mh_code, i = read_varint(raw, i)
    mh_len, i = read_varint(raw, i)
    digest = raw[i:]
    assert len(digest) == mh_len
    return {"version": version, "codec": codec, "hash": mh_code, "digest": digest}


# ----------------------------------------------------------------------------- pinned values

EMPTY_CID = "bagaqiera4oymiquy7qobjgx36tejs35zeqt24qpemsnzgtfeswmrw6csxbkq"
FIXED_BLOCK = encode({"hello": "world", "n": 1})
FIXED_CID = "bagaqieragw4twikvnoy3kad7u743vptgthx7kkmghryfophyz2top3uubpoa"


def test_known_cid_of_empty_bytes():
    raw = cidlib.compute(b"")
    assert raw == bytes.fromhex("0181041220") + hashlib.sha256(b"").digest()
    # 37 bytes: 01 | 81 04 | 12 | 20 | digest (docs/ARCHITECTURE.md says 36: the codec varint is 2 bytes)
    assert len(raw) == cidlib.CID_LEN == 37
    assert cidlib.format_cid(raw) == EMPTY_CID == reference_cid_text(b"")


def test_known_cid_of_a_fixed_block():
    assert FIXED_BLOCK == bytes.fromhex("82a568656c6c6fa5776f726c64a16e01")
    assert cidlib.format_cid(cidlib.compute(FIXED_BLOCK)) == FIXED_CID == reference_cid_text(FIXED_BLOCK)


def test_varint_prefix_is_what_the_spec_says():
    assert cidlib.CID_PREFIX == varint(1) + varint(0x0201) + varint(0x12) + varint(32)


# ----------------------------------------------------------------------------- properties

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_every_cid_recomputes_from_its_bytes(block):
    raw = cidlib.compute(block)
    cidlib.verify(raw, block)
    text = cidlib.format_cid(raw)
    assert text == reference_cid_text(block)
    assert cidlib.parse_cid(text) == raw
    parsed = parse_multibase_cid(text)
    assert parsed == {"version": 1, "codec": 0x0201, "hash": 0x12, "digest": hashlib.sha256(block).digest()}
    assert len(text) == cidlib.CID_TEXT_LEN and text == text.lower()
    with pytest.raises(CorruptBlockError):
        cidlib.verify(raw, block + b"\x00")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_many_cids_at_once_are_each_blocks_cid(blocks):
    out = cidlib.compute_many(blocks)
    assert [cidlib.format_cid(c) for c in out] == [reference_cid_text(b) for b in blocks]


def test_many_cids_refuse_what_is_not_bytes():
    for bad in ([b"a", None], ["text"], [7]):
        with pytest.raises(TypeError):
            cidlib.compute_many(bad)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=100), st.integers(0, 10_000))
def test_verify_detects_any_single_bit_flip(block, pos):
    raw = cidlib.compute(block)
    bad = bytearray(block)
    bit = pos % (len(block) * 8)
    bad[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CorruptBlockError):
        cidlib.verify(raw, bytes(bad))


def test_parse_accepts_raw_binary_cids():
    raw = cidlib.compute(b"x")
    assert cidlib.parse_cid(raw) == raw


# ----------------------------------------------------------------------------- rejections

def _other_codec(prefix_hex: str, digest_len: int = 32) -> str:
    return "b" + b32_lower(bytes.fromhex(prefix_hex) + bytes(digest_len))


BAD_TEXT = {
    "upper case": EMPTY_CID.upper(),
    "upper multibase prefix": "B" + EMPTY_CID[1:],
    "mixed case": EMPTY_CID[:10] + EMPTY_CID[10:20].upper() + EMPTY_CID[20:],
    "base58btc prefix": "z" + EMPTY_CID[1:],
    "base16 prefix": "f" + EMPTY_CID[1:],
    "no prefix": EMPTY_CID[1:],
    "too short": EMPTY_CID[:-1],
    "too long": EMPTY_CID + "a",
    "empty": "",
    "just b": "b",
    "padding": EMPTY_CID[:-2] + "==",
    "non-base32 char": EMPTY_CID[:-1] + "1",
    "non-ascii": EMPTY_CID[:-1] + "é",
    "dag-cbor codec": _other_codec("01711220"),
    "dag-json codec (same length)": _other_codec("01a9021220"),
    "wrong digest length byte (same length)": _other_codec("0181041221"),
    "sha3-256 (same length)": _other_codec("0181041620"),
    "raw codec": _other_codec("01551220"),
    "dag-pb codec": _other_codec("01701220"),
    "sha2-512": _other_codec("0181041340", 64),
    "blake2b-256": _other_codec("018104a0e40220"),
    "cidv0 style": "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR",
    "cid version 2": _other_codec("0281041220"),
    "nonzero padding bits": EMPTY_CID[:-1] + B32[B32.index(EMPTY_CID[-1]) | 1],
}


@pytest.mark.parametrize("name", sorted(BAD_TEXT))
def test_parse_rejects(name):
    with pytest.raises(ValidationError):
        cidlib.parse_cid(BAD_TEXT[name])


def test_same_length_variants_are_really_same_length():
    for name in ("dag-json codec (same length)", "wrong digest length byte (same length)", "sha3-256 (same length)"):
        assert len(BAD_TEXT[name]) == len(EMPTY_CID), name


def test_the_nonzero_padding_case_is_really_the_same_bytes():
    # Guard for the test above: only the 2 spare bits differ.
    bad = BAD_TEXT["nonzero padding bits"]
    assert bad != EMPTY_CID and bad[:-1] == EMPTY_CID[:-1]


@pytest.mark.parametrize("value", [None, 12, b"", b"\x01" * 37, bytes(37), cidlib.compute(b"")[:-1],
                                   bytearray(cidlib.compute(b"")), ["b"]])
def test_parse_and_format_reject_non_cids(value):
    with pytest.raises(ValidationError):
        cidlib.parse_cid(value)
    if not isinstance(value, str):
        with pytest.raises(ValidationError):
            cidlib.format_cid(value)


def test_is_cid():
    assert cidlib.is_cid(cidlib.compute(b"a"))
    assert not cidlib.is_cid(cidlib.compute(b"a")[:-1])
    assert not cidlib.is_cid(bytearray(cidlib.compute(b"a")))
    assert not cidlib.is_cid(bytes.fromhex("01711220") + bytes(32))
    assert not cidlib.is_cid("b")
