"""Space files (crypto/spacefile.py): state round trip, passphrase wrapping, key commitment."""

from __future__ import annotations

import os
import stat

import pytest

from ostracon.core.errors import ValidationError, WrongKeyError
from ostracon.crypto import spacefile
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space

FAST = dict(iterations=1000, _insecure_for_tests=True)
URL = "ws://127.0.0.1:1"


def test_member_space_round_trips_with_its_epochs(tmp_path):
    a, b = Identity.generate(), Identity.generate()
    space = Space.generate("team", identity=a)
    joined = Space.from_invite(space.invite(URL), identity=b)
    space.members.merge(joined.members.export())
    space.remove(b.actor)
    path = tmp_path / "team.space"
    spacefile.save(space, path, passphrase="sesame", **FAST)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = spacefile.load(path, passphrase="sesame", identity=a)
    assert back.room_id == space.room_id and back.role() == "admin"
    assert set(back.keyring()) == set(space.keyring())
    assert b"sesame" not in path.read_bytes() and space.export_key().hex() not in path.read_text()


def test_wrong_passphrase_is_wrong_key_error_and_no_normalisation(tmp_path):
    space = Space.generate("n")
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    blob = spacefile.wrap(spacefile.export_state(space), composed, **FAST)
    assert spacefile.import_state(spacefile.unwrap(blob, composed)).room_id == space.room_id
    with pytest.raises(WrongKeyError):
        spacefile.unwrap(blob, decomposed)  # different bytes: never normalised
    with pytest.raises(WrongKeyError):
        spacefile.unwrap(blob, "cafe")


def test_wrapping_uses_a_random_salt_and_refuses_weak_parameters():
    data = spacefile.export_state(Space.generate())
    assert spacefile.wrap(data, "pw", **FAST) != spacefile.wrap(data, "pw", **FAST)
    with pytest.raises(ValidationError):
        spacefile.wrap(data, "pw", iterations=1000)
    for bad in ("", "   ", "\ud800", None, "x" * 1025):
        with pytest.raises(ValidationError):
            spacefile.wrap(data, bad, **FAST)


def test_damaged_or_mismatched_files(tmp_path):
    space = Space.generate()
    path = tmp_path / "s.space"
    spacefile.save(space, path)
    with pytest.raises(ValidationError, match="not wrapped"):
        spacefile.load(path, passphrase="x")
    assert spacefile.load(path).room_id == space.room_id
    path.write_text("{}")
    with pytest.raises(ValidationError, match="not a space file"):
        spacefile.load(path)
    with pytest.raises(ValidationError):
        spacefile.unwrap(b"junk", "pw")
    blob = bytearray(spacefile.wrap(spacefile.export_state(space), "pw", **FAST))
    blob[-3] ^= 1
    with pytest.raises(ValidationError, match="damaged"):
        spacefile.unwrap(bytes(blob), "pw", crypto=NativeCrypto())
