"""Identity: generation, signatures, the 0600 identity file, validation and hygiene."""

from __future__ import annotations

import json
import os
import pickle
import stat

import pytest

from crypto_contract import ED25519_VECTORS
from ostracon.core.errors import OstraconError, StorageError, ValidationError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import (
    FILE_MODE,
    MAX_IDENTITY_FILE_SIZE,
    Identity,
    IdentityExistsError,
    IdentityFileError,
    InsecurePermissionsError,
)
from ostracon.crypto.native import NativeCrypto

RFC_SEED, RFC_PUB, _, RFC_SIG = (bytes.fromhex(x) for x in ED25519_VECTORS[0])


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_from_seed_matches_rfc8032():
    ident = Identity.from_seed(RFC_SEED)
    assert ident.actor == RFC_PUB
    assert ident.actor_hex == RFC_PUB.hex()
    assert ident.sign(b"") == RFC_SIG
    assert ident.verify(b"", RFC_SIG)
    assert Identity.verify_signature(RFC_PUB, b"", RFC_SIG)
    assert not Identity.verify_signature(RFC_PUB, b"x", RFC_SIG)
    assert not Identity.verify_signature(b"short", b"", RFC_SIG)  # never raises


def test_generate_uses_backend_randomness():
    a = Identity.generate(NativeCrypto(random_bytes=DeterministicRandom(3)))
    b = Identity.generate(NativeCrypto(random_bytes=DeterministicRandom(3)))
    c = Identity.generate(NativeCrypto(random_bytes=DeterministicRandom(4)))
    assert a == b and a.actor == b.actor
    assert a != c and a.actor != c.actor
    assert len(a.actor) == 32
    assert Identity.generate() != Identity.generate()  # os.urandom by default


def test_fingerprint_shape_and_stability():
    fp = Identity.from_seed(RFC_SEED).fingerprint
    assert fp == "ojl3-oray-6wrb-2amr"  # pinned in tests/vectors/crypto.json too
    parts = fp.split("-")
    assert len(parts) == 4 and all(len(p) == 4 for p in parts)
    assert Identity.from_seed(bytes(32)).fingerprint != fp


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, "a" * 32, None, 12345, [0] * 32])
def test_wrong_seed_is_validation_error(bad):
    with pytest.raises(ValidationError):
        Identity.from_seed(bad)


def test_seed_accepts_bytes_likes():
    assert Identity.from_seed(bytearray(RFC_SEED)).actor == RFC_PUB
    assert Identity.from_seed(memoryview(RFC_SEED)).actor == RFC_PUB


def test_seed_never_in_repr_or_str():
    ident = Identity.from_seed(RFC_SEED)
    for text in (repr(ident), str(ident), f"{ident}", repr([ident]), repr({"i": ident})):
        assert RFC_SEED.hex() not in text
        assert RFC_SEED.hex()[:12] not in text
        assert repr(RFC_SEED) not in text
    assert ident.fingerprint in repr(ident)


def test_not_picklable():
    with pytest.raises(TypeError):
        pickle.dumps(Identity.from_seed(RFC_SEED))


def test_export_seed_round_trip():
    ident = Identity.generate()
    assert Identity.from_seed(ident.export_seed()) == ident
    assert hash(Identity.from_seed(ident.export_seed())) == hash(ident)


# --- the identity file -----------------------------------------------------------------------

def test_save_creates_0600_and_round_trips(tmp_path):
    ident = Identity.generate()
    path = tmp_path / "me.key"
    ident.save(path)
    assert mode_of(path) == FILE_MODE
    loaded = Identity.load(path)
    assert loaded == ident and loaded.actor == ident.actor
    assert loaded.sign(b"m") == ident.sign(b"m")


def test_save_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        Identity.generate().save(tmp_path / "a.key")
        Identity.generate().save(tmp_path / "a.key", overwrite=True)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a.key") == 0o600


def test_file_format(tmp_path):
    ident = Identity.from_seed(RFC_SEED)
    path = tmp_path / "me.key"
    ident.save(path)
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    doc = json.loads(raw)
    assert doc == {"actor": RFC_PUB.hex(), "format": "ostracon-identity", "seed": RFC_SEED.hex(), "version": 1}
    assert list(doc) == sorted(doc)


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "me.key"
    first = Identity.generate()
    first.save(path)
    with pytest.raises(IdentityExistsError) as ei:
        Identity.generate().save(path)
    assert isinstance(ei.value, StorageError) and isinstance(ei.value, OstraconError)
    assert "overwrite=True" in str(ei.value)
    assert Identity.load(path) == first  # untouched


def test_overwrite_replaces_atomically(tmp_path):
    path = tmp_path / "me.key"
    Identity.generate().save(path)
    second = Identity.generate()
    second.save(path, overwrite=True)
    assert Identity.load(path) == second
    assert mode_of(path) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["me.key"]  # no temporary file left behind


def test_never_writes_through_a_symlink(tmp_path):
    target = tmp_path / "victim"
    target.write_text("precious")
    link = tmp_path / "me.key"
    link.symlink_to(target)
    with pytest.raises(IdentityExistsError):
        Identity.generate().save(link)
    Identity.generate().save(link, overwrite=True)  # replaces the link itself
    assert target.read_text() == "precious"
    assert not link.is_symlink()


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(IdentityFileError):
        Identity.generate().save(tmp_path / "nope" / "me.key")


def test_load_missing_file(tmp_path):
    with pytest.raises(IdentityFileError, match="no identity file"):
        Identity.load(tmp_path / "missing.key")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602, 0o666])
def test_load_refuses_group_or_world_access(tmp_path, mode):
    path = tmp_path / "me.key"
    ident = Identity.generate()
    ident.save(path)
    os.chmod(path, mode)
    with pytest.raises(InsecurePermissionsError, match="chmod 600"):
        Identity.load(path)
    with pytest.warns(UserWarning, match="group/others"):
        assert Identity.load(path, allow_insecure=True) == ident


def test_load_accepts_owner_only_modes(tmp_path):
    path = tmp_path / "me.key"
    ident = Identity.generate()
    ident.save(path)
    os.chmod(path, 0o400)
    assert Identity.load(path) == ident


def _write(path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _doc(**over) -> bytes:
    doc = {"actor": RFC_PUB.hex(), "format": "ostracon-identity", "seed": RFC_SEED.hex(), "version": 1}
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "JSON"),
        (b"\xff\xfe", "JSON"),
        (b"not json", "JSON"),
        (b"[1, 2]", "format"),
        (_doc(format="something-else"), "format"),
        (_doc(version=2), "version 2"),
        (_doc(version=True), "version"),
        (_doc(version=...), "version"),
        (_doc(seed=RFC_SEED.hex()[:-2]), "32 bytes"),
        (_doc(seed="zz" * 32), "hex"),
        (_doc(seed=...), "hex strings"),
        (_doc(actor=bytes(32).hex()), "public key"),
        (_doc(actor=5), "hex strings"),
        (b" " * (MAX_IDENTITY_FILE_SIZE + 1), "larger than"),
    ],
)
def test_load_malformed(tmp_path, data, why):
    path = tmp_path / "me.key"
    _write(path, data)
    with pytest.raises(IdentityFileError, match=why):
        Identity.load(path)


def test_load_or_generate(tmp_path):
    path = tmp_path / "me.key"
    created = Identity.load_or_generate(path)
    assert mode_of(path) == 0o600
    assert Identity.load_or_generate(path) == created


def test_custom_backend_is_kept(tmp_path):
    backend = NativeCrypto()
    path = tmp_path / "me.key"
    Identity.generate(backend).save(path)
    assert Identity.load(path, crypto=backend).crypto is backend


# ---- ECDSA P-256 identities ------------------------------------------------------------------

P256_D = bytes.fromhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")  # RFC 6979 A.2.5


def test_p256_identity_actor_sign_and_verify():
    ident = Identity.from_seed(P256_D, algorithm="p256")
    assert ident.algorithm == "p256" and len(ident.actor) == 35 and ident.actor[:2] == b"\x80\x24"
    assert ident.actor[2:].hex() == "0360fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    sig = ident.sign(b"m")
    assert len(sig) == 64 and ident.verify(b"m", sig) and not ident.verify(b"n", sig)
    assert Identity.verify_signature(ident.actor, b"m", sig)
    assert not Identity.verify_signature(ident.actor[3:], b"m", sig)  # same bytes, read as Ed25519
    ed = Identity.from_seed(P256_D)  # the same 32 bytes as an Ed25519 seed: another identity
    assert ed.actor != ident.actor and ed != ident and not ed.verify(b"m", sig)
    assert "algorithm='p256'" in repr(ident) and P256_D.hex() not in repr(ident)


def test_p256_generate_draws_until_the_scalar_is_in_range():
    zero_then_good = iter([bytes(32), b"\xff" * 32, P256_D])
    backend = NativeCrypto(random_bytes=lambda n: next(zero_then_good))
    assert Identity.generate(backend, algorithm="p256").export_seed() == P256_D
    with pytest.raises(ValidationError, match="no usable"):
        Identity.generate(NativeCrypto(random_bytes=lambda n: bytes(n)), algorithm="p256")


@pytest.mark.parametrize("bad", [bytes(32), b"\xff" * 32, bytes(31)])
def test_p256_scalar_out_of_range_is_validation_error(bad):
    with pytest.raises(ValidationError):
        Identity.from_seed(bad, algorithm="p256")


@pytest.mark.parametrize("algorithm", ["P256", "secp256k1", "", None, 1])
def test_unknown_algorithm_is_validation_error(algorithm):
    with pytest.raises(ValidationError, match="algorithm"):
        Identity.generate(algorithm=algorithm)


def test_p256_file_round_trip_and_format(tmp_path):
    ident = Identity.from_seed(P256_D, algorithm="p256")
    path = tmp_path / "me.key"
    ident.save(path)
    doc = json.loads(path.read_bytes())
    assert doc == {"actor": ident.actor_hex, "algorithm": "p256", "format": "ostracon-identity",
                   "seed": P256_D.hex(), "version": 1}
    loaded = Identity.load(path)
    assert loaded == ident and loaded.algorithm == "p256" and loaded.actor == ident.actor
    created = Identity.load_or_generate(tmp_path / "new.key", algorithm="p256")
    assert Identity.load_or_generate(tmp_path / "new.key") == created  # an existing file keeps its algorithm


@pytest.mark.parametrize("over, why", [
    ({"algorithm": "rsa"}, "algorithm"),
    ({"algorithm": 1}, "algorithm"),
    ({"algorithm": "p256"}, "public key"),                    # an Ed25519 actor under p256
    ({"algorithm": "p256", "seed": "00" * 32}, "1..n-1"),
])
def test_load_refuses_a_wrong_algorithm(tmp_path, over, why):
    path = tmp_path / "me.key"
    _write(path, _doc(**over))
    with pytest.raises(IdentityFileError, match=why):
        Identity.load(path)
