"""core.protocol.frames: layout, sealing/opening, and every way a frame is dropped and counted."""

from __future__ import annotations

import ast
import hashlib
import hmac
import random
import struct
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from ostracon.core.errors import FrameError, ValidationError, WrongKeyError
from ostracon.core.protocol import frames as F
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space

AEAD = NativeCrypto()
SPACE = Space.from_key(bytes(range(32)), "notes", crypto=AEAD)
KEYS = SPACE.frame_keys()
SENDER = b"\x11" * 16


def seal(payload=b"hello", counter=0, sender=SENDER, nonce=b"\x22" * 12, keys=KEYS, **kw) -> bytes:
    return F.seal_frame(keys, AEAD, sender=sender, counter=counter, nonce=nonce, payload=payload, **kw)


def receiver(**kw) -> F.FrameReceiver:
    return F.FrameReceiver(KEYS, AEAD, **kw)


def only_counted(rx: F.FrameReceiver, reason: str, n: int = 1) -> None:
    stats = rx.stats
    assert stats[reason] == n, stats
    assert sum(stats.values()) - stats["accepted"] == rx.dropped


# --- purity ---------------------------------------------------------------------------------

def test_core_frames_is_pure():
    src = Path(F.__file__).read_text()
    banned = {"os", "io", "socket", "asyncio", "threading", "time", "random", "secrets", "js", "pyodide",
              "websockets", "sqlite3", "cryptography"}
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]] if node.level == 0 else []
        else:
            continue
        assert not set(names) & banned, names


# --- layout ---------------------------------------------------------------------------------

def test_layout_matches_documentation():
    # Build the frame by hand from the documented layout with `cryptography` directly.
    payload, counter, nonce = b"some batch", 0x0102030405060708, bytes(range(12))
    frame = seal(payload, counter=counter, nonce=nonce)
    ct_len = 1 + len(payload) + 16
    commitment = hmac.new(SPACE.commit_key, b"ostracon/frame-commitment/v1", hashlib.sha256).digest()[:16]
    header = bytes([0xA1]) + SPACE.frame_keys().room + SENDER + struct.pack(">QI", counter, ct_len) + nonce + commitment
    assert len(header) == F.HEADER_SIZE == 73
    body = AESGCM(SPACE.frame_key).encrypt(nonce, b"\x00" + payload, b"ostracon/frame/v1\x00" + header)
    assert frame == header + body
    assert len(frame) == len(payload) + F.FRAME_OVERHEAD
    h = F.parse_header(frame)
    assert (h.room, h.sender, h.counter, h.length, h.nonce, h.commitment) == (
        SPACE.frame_keys().room, SENDER, counter, ct_len, nonce, commitment)


def test_round_trip_and_max_counter():
    for counter in (0, 1, 2**32, 2**64 - 1):
        opened = F.open_frame(KEYS, AEAD, seal(b"payload", counter=counter))
        assert opened == F.OpenedFrame(SENDER, counter, b"payload")
    assert F.open_frame(KEYS, AEAD, seal(b"")).payload == b""


def test_plaintext_is_not_visible():
    payload = b"collection=secret-notes doc=alice field=diagnosis" * 4
    frame = seal(payload)
    for needle in (b"secret-notes", b"alice", b"diagnosis"):
        assert needle not in frame
    assert SPACE.export_key() not in frame and SPACE.frame_key not in frame and SPACE.commit_key not in frame


def test_seal_validation():
    for kw in ({"sender": b"short"}, {"nonce": bytes(11)}, {"counter": -1}, {"counter": 2**64},
               {"counter": True}, {"payload": "text"}):
        with pytest.raises(ValidationError):
            seal(**kw)
    with pytest.raises(ValidationError):
        F.FrameKeys(b"r" * 15, bytes(32), b"\x01" * 32)
    with pytest.raises(ValidationError):
        F.FrameKeys(b"r" * 16, bytes(32), bytes(32))  # identical keys: a derivation bug
    for kw in ({"replay_window": 0}, {"max_senders": 0}, {"max_frame_size": True}):
        with pytest.raises(ValidationError):
            receiver(**kw)


# --- size limits ----------------------------------------------------------------------------

def test_oversize_refused_on_seal_and_on_open():
    limit = F.DEFAULT_MAX_FRAME_SIZE
    biggest = limit - F.FRAME_OVERHEAD
    frame = seal(bytes(biggest))
    assert len(frame) == limit
    assert F.open_frame(KEYS, AEAD, frame).payload == bytes(biggest)
    with pytest.raises(F.OversizeFrameError):
        seal(bytes(biggest + 1))
    small = seal(bytes(1000))
    rx = receiver(max_frame_size=1000)
    assert rx.receive(small) is None
    only_counted(rx, "oversize")
    with pytest.raises(FrameError):
        rx.open(small)
    with pytest.raises(F.OversizeFrameError):
        seal(bytes(101), max_payload_size=100)


def test_sender_reports_payload_capacity():
    tx = F.FrameSender(KEYS, AEAD, DeterministicRandom(1), max_frame_size=4096)
    assert len(tx.seal(bytes(tx.max_payload_per_frame))) == 4096
    with pytest.raises(F.OversizeFrameError):
        tx.seal(bytes(tx.max_payload_per_frame + 1))
    assert tx.next_counter == 1  # a refused payload does not burn a counter


# --- compression ----------------------------------------------------------------------------

def test_compression_round_trip_and_fallback():
    text = b"the same change, again and again; " * 2000
    packed = seal(text, compress=True)
    assert len(packed) < len(text) // 10
    assert F.open_frame(KEYS, AEAD, packed).payload == text
    noise = random.Random(5).randbytes(5000)  # incompressible: sent raw
    assert len(seal(noise, compress=True)) == len(noise) + F.FRAME_OVERHEAD
    assert F.open_frame(KEYS, AEAD, seal(noise, compress=True)).payload == noise


def _forge(body: bytes, counter=0) -> bytes:
    """A frame with an arbitrary (authentic) body: what a buggy or hostile key holder could send."""
    ct_len = len(body) + 16
    header = struct.pack(">B16s16sQI12s16s", 0xA1, KEYS.room, SENDER, counter, ct_len, bytes(12), KEYS.commitment)
    return header + AESGCM(KEYS.frame_key).encrypt(bytes(12), body, b"ostracon/frame/v1\x00" + header)


def test_zip_bomb_and_bad_bodies_are_dropped():
    rx = receiver(max_payload_size=10_000)
    assert rx.receive(_forge(b"\x01" + zlib.compress(bytes(10_001)), 0)) is None
    only_counted(rx, "oversize")
    assert rx.receive(_forge(b"\x01" + b"not zlib", 1)) is None
    assert rx.receive(_forge(b"\x01" + zlib.compress(b"x")[:-2], 2)) is None  # truncated stream
    assert rx.receive(_forge(b"\x01" + zlib.compress(b"x") + b"tail", 3)) is None
    assert rx.receive(_forge(b"\x07payload", 4)) is None  # unknown encoding
    only_counted(rx, "malformed", 4)
    assert rx.receive(_forge(b"", 5)) is None  # no encoding byte: shorter than any real frame
    only_counted(rx, "truncated", 1)
    assert rx.receive(_forge(b"\x00" + bytes(10_001), 6)) is None
    only_counted(rx, "oversize", 2)
    assert rx.receive(_forge(b"\x01" + zlib.compress(b"fine"), 7)).payload == b"fine"


# --- drops ----------------------------------------------------------------------------------

def test_every_bit_flip_is_dropped_and_counted():
    frame = seal(b"batch of envelopes", counter=5)
    expected_reason = {}
    for i in range(len(frame)):
        if i == 0:
            expected_reason[i] = "malformed"
        elif 1 <= i < 17:
            expected_reason[i] = "foreign_room"
        elif 41 <= i < 45:
            expected_reason[i] = None  # length field: truncated or malformed depending on the bit
        elif 57 <= i < 73:
            expected_reason[i] = "wrong_key"
        else:
            expected_reason[i] = "tampered"  # sender, counter, nonce, ciphertext, tag
    for i in range(len(frame)):
        for bit in range(8):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            rx = receiver()
            assert rx.receive(bytes(bad)) is None, (i, bit)
            stats = rx.stats
            assert stats["accepted"] == 0 and rx.dropped == 1, (i, bit, stats)
            want = expected_reason[i]
            if want is None:
                assert stats["truncated"] + stats["malformed"] == 1, (i, bit, stats)
            else:
                assert stats[want] == 1, (i, bit, stats)
    rx = receiver()
    assert rx.receive(frame).payload == b"batch of envelopes"  # the original still opens


def test_every_truncation_is_dropped_as_truncated():
    frame = seal(b"0123456789" * 10)
    rx = receiver()
    for n in range(len(frame)):
        assert rx.receive(frame[:n]) is None
    only_counted(rx, "truncated", len(frame))
    assert rx.stats["accepted"] == 0


def test_trailing_bytes_and_garbage_are_malformed():
    rx = receiver()
    assert rx.receive(seal() + b"\x00") is None
    assert rx.receive(b"\x00" * 200) is None  # bad magic
    assert rx.receive(bytes([0xA2]) + seal()[1:]) is None  # future version
    assert rx.receive("not bytes") is None
    only_counted(rx, "malformed", 4)
    with pytest.raises(F.MalformedFrameError, match="unsupported frame version 2"):
        rx.open(bytes([0xA2]) + seal()[1:])


def test_replay_is_dropped_and_counted():
    rx = receiver()
    frames = [seal(str(i).encode(), counter=i) for i in range(5)]
    for fr in frames:
        assert rx.receive(fr) is not None
    for fr in frames:
        assert rx.receive(fr) is None
    only_counted(rx, "replayed", 5)
    assert rx.stats["accepted"] == 5
    with pytest.raises(F.ReplayedFrameError):
        rx.open(frames[2])
    # A replay under a fresh nonce (same counter) is still a replay.
    assert rx.receive(seal(b"x", counter=3, nonce=b"\x99" * 12)) is None
    # Another sender's counters are independent.
    assert rx.receive(seal(b"y", counter=0, sender=b"\x22" * 16)).payload == b"y"


def test_out_of_order_within_window_accepted_once():
    rx = receiver(replay_window=64)
    order = list(range(64))
    random.Random(11).shuffle(order)
    for c in order:
        assert rx.receive(seal(b"p", counter=c)) is not None, f"seed 11 counter {c}"
    for c in order:
        assert rx.receive(seal(b"p", counter=c)) is None
    assert rx.stats["accepted"] == 64 and rx.stats["replayed"] == 64


def test_frames_older_than_the_window_are_dropped():
    rx = receiver(replay_window=16)
    assert rx.receive(seal(counter=100)) is not None
    assert rx.receive(seal(counter=85)) is not None  # 15 behind: inside
    assert rx.receive(seal(counter=84)) is None  # 16 behind: outside
    only_counted(rx, "replayed")
    assert rx.receive(seal(counter=10_000)) is not None  # a big jump resets the window
    assert rx.receive(seal(counter=100)) is None


def test_forged_counter_does_not_poison_the_window():
    rx = receiver(replay_window=16)
    genuine = seal(counter=1)
    forged = bytearray(seal(counter=10**9))
    forged[-1] ^= 1  # fails authentication
    assert rx.receive(bytes(forged)) is None
    only_counted(rx, "tampered")
    assert rx.receive(genuine) is not None  # still within the window: the forgery moved nothing


def test_foreign_room_dropped():
    other = Space.from_key(b"\x07" * 32, crypto=AEAD).frame_keys()
    rx = receiver()
    assert rx.receive(seal(keys=other)) is None
    only_counted(rx, "foreign_room")
    with pytest.raises(F.ForeignRoomError):
        F.open_frame(KEYS, AEAD, seal(keys=other))


def test_wrong_key_fails_clearly_before_decryption():
    # Same room id, different key: only possible for an attacker, but the check must not
    # depend on the room id. A decryption attempt must not happen at all.
    impostor = F.FrameKeys(KEYS.room, b"\x05" * 32, b"\x06" * 32)
    calls = []

    class Spy:
        def aes_gcm_encrypt(self, *a):
            return AEAD.aes_gcm_encrypt(*a)

        def aes_gcm_decrypt(self, *a):
            calls.append(a)
            return AEAD.aes_gcm_decrypt(*a)

    frame = F.seal_frame(impostor, AEAD, sender=SENDER, counter=0, nonce=bytes(12), payload=b"x")
    with pytest.raises(WrongKeyError, match="different space key"):
        F.open_frame(KEYS, Spy(), frame)
    rx = F.FrameReceiver(KEYS, Spy())
    assert rx.receive(frame) is None
    only_counted(rx, "wrong_key")
    assert rx.last_drop == "wrong_key"
    with pytest.raises(WrongKeyError):
        rx.open(frame)
    assert calls == []


def test_wrong_passphrase_is_wrong_key_or_foreign_room():
    a = Space.from_passphrase("right", "notes", iterations=1000, _insecure_for_tests=True)
    b = Space.from_passphrase("wrong", "notes", iterations=1000, _insecure_for_tests=True)
    frame = F.seal_frame(a.frame_keys(), AEAD, sender=SENDER, counter=0, nonce=bytes(12), payload=b"x")
    with pytest.raises(F.ForeignRoomError):  # a different key derives a different room
        F.open_frame(b.frame_keys(), AEAD, frame)
    forced = F.FrameKeys(a.frame_keys().room, b.frame_key, b.commit_key)  # had it reached the room
    with pytest.raises(WrongKeyError):
        F.open_frame(forced, AEAD, frame)


def test_random_garbage_never_accepted():
    rng = random.Random(2024)
    rx = receiver()
    for i in range(2000):
        n = rng.choice([0, 1, 50, 73, 89, 90, 91, 200, 5000])
        junk = rng.randbytes(n)
        if rng.random() < 0.5 and n:
            junk = bytes([0xA1]) + junk[1:]
        if rng.random() < 0.3 and n >= F.MIN_FRAME_SIZE:  # also right room + commitment
            junk = bytes([0xA1]) + KEYS.room + junk[17:57] + KEYS.commitment + junk[73:]
        assert rx.receive(junk) is None, f"seed 2024 case {i}"
    assert rx.stats["accepted"] == 0 and rx.dropped == 2000


# --- sender / receiver stream ---------------------------------------------------------------

def test_sender_stream_round_trip():
    rng = DeterministicRandom(77)
    tx = F.FrameSender(KEYS, AEAD, rng)
    rx = receiver()
    payloads = [bytes([i]) * i for i in range(50)]
    frames = [tx.seal(p) for p in payloads]
    assert len({fr[45:57] for fr in frames}) == 50  # a fresh nonce every frame
    assert [rx.receive(fr).payload for fr in frames] == payloads
    assert {rx.receive(fr) for fr in frames} == {None}
    assert rx.stats == {**{r: 0 for r in F.DROP_REASONS}, "accepted": 50, "replayed": 50}
    assert tx.next_counter == 50 and len(tx.sender) == 16


def test_sender_counter_exhaustion():
    tx = F.FrameSender(KEYS, AEAD, DeterministicRandom(1), first_counter=2**64 - 1)
    tx.seal(b"last")
    with pytest.raises(FrameError, match="exhausted"):
        tx.seal(b"one too many")


def test_sender_state_is_bounded():
    rx = receiver(max_senders=4)
    for s in range(10):
        assert rx.receive(seal(counter=0, sender=bytes([s]) * 16)) is not None
    assert len(rx._windows) == 4
    # The most recent senders are remembered.
    assert rx.receive(seal(counter=0, sender=bytes([9]) * 16)) is None


@settings(max_examples=80, derandomize=True, deadline=None)
@given(
    payload=st.binary(max_size=2000),
    counter=st.integers(min_value=0, max_value=2**64 - 1),
    sender=st.binary(min_size=16, max_size=16),
    nonce=st.binary(min_size=12, max_size=12),
    compress=st.booleans(),
    mutation=st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
)
def test_property_round_trip_and_any_mutation_rejected(payload, counter, sender, nonce, compress, mutation):
    frame = seal(payload, counter=counter, sender=sender, nonce=nonce, compress=compress)
    rx = receiver()
    pos, xor = mutation
    bad = bytearray(frame)
    bad[pos % len(frame)] ^= xor
    assert rx.receive(bytes(bad)) is None
    assert rx.dropped == 1
    opened = rx.receive(frame)
    assert opened == F.OpenedFrame(sender, counter, payload)
    assert rx.receive(frame) is None and rx.stats["replayed"] == 1


# --- padding to size buckets ------------------------------------------------------------------

@settings(max_examples=80, derandomize=True, deadline=None)
@given(n=st.integers(min_value=0, max_value=300_000), compress=st.booleans())
def test_padded_frames_are_exactly_a_bucket_and_open_to_the_payload(n, compress):
    payload = bytes(random.Random(n).randbytes(n))
    frame = seal(payload, pad=True, compress=compress)
    assert len(frame) in F.PAD_BUCKETS
    assert len(frame) >= F.HEADER_SIZE + n // 2  # not smaller than the data it carries
    assert F.open_frame(KEYS, AEAD, frame).payload == payload


def test_note_length_no_longer_shows():
    # A 5,000-character note and a 4,200-character one land in the same 8 KiB bucket.
    sizes = {len(seal(b"x" * n, pad=True)) for n in (4200, 5000, 5466)}
    assert sizes == {8192}
    assert len(seal(b"", pad=True)) == 512
    # Beyond the largest bucket (only when max_frame_size is raised) the frame fills the limit.
    big = seal(b"y" * 600_000, pad=True, max_frame_size=1 << 20, max_payload_size=1 << 20)
    assert len(big) == 1 << 20


def test_frame_sender_pads_by_default():
    sender = F.FrameSender(KEYS, AEAD, DeterministicRandom(3))
    assert len(sender.seal(b"hi")) == 512
    assert len(F.FrameSender(KEYS, AEAD, DeterministicRandom(3), pad=False).seal(b"hi")) == F.FRAME_OVERHEAD + 2
