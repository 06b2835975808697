"""A database's own copy of its space in storage meta (crypto/spacestore.py): the browser's
way to open {invite}, {passphrase, name} and earlier passphrase spaces."""

from __future__ import annotations

import pytest

from ostracon.core.errors import ValidationError, WrongKeyError
from ostracon.crypto import spacestore
from ostracon.crypto.identity import Identity
from ostracon.crypto.space import Space
from ostracon.storage.memory import MemoryStorage

FAST = dict(_insecure_for_tests=True)
URL = "ws://127.0.0.1:1"


def test_passphrase_creates_then_unlocks_a_random_space():
    st, me = MemoryStorage(), Identity.generate()
    first = spacestore.open_space(st, {"create": True, "passphrase": "pw one", "name": "notes"}, identity=me, **FAST)
    again = spacestore.open_space(st, {"passphrase": "pw one"}, identity=me, **FAST)
    assert again.room_id == first.room_id and again.role() == "admin"
    with pytest.raises(WrongKeyError):
        spacestore.open_space(st, {"passphrase": "pw two", "name": "notes"}, identity=me, **FAST)
    # Another device with the same name and passphrase gets its own space: they never meet.
    other = spacestore.open_space(MemoryStorage(), {"create": True, "passphrase": "pw one", "name": "notes"},
                                  identity=Identity.generate(), **FAST)
    assert other.room_id != first.room_id


def test_invite_is_kept_and_another_invite_is_wrong_key():
    admin = Space.generate("team", identity=Identity.generate())
    st, me = MemoryStorage(), Identity.generate()
    joined = spacestore.open_space(st, {"invite": admin.invite(URL)}, identity=me, **FAST)
    assert joined.space_id == admin.space_id
    again = spacestore.open_space(st, {"invite": admin.invite(URL)}, identity=me, **FAST)
    assert again.space_id == admin.space_id
    stranger = Space.generate("team", identity=Identity.generate())
    with pytest.raises(WrongKeyError):
        spacestore.open_space(st, {"invite": stranger.invite(URL)}, identity=me, **FAST)


def test_earlier_passphrase_spaces_keep_their_key():
    st, me = MemoryStorage(), Identity.generate()
    sp = spacestore.open_space(st, {"passphrase": "pw", "name": "family"}, identity=me, **FAST)
    legacy = Space.from_passphrase("pw", "family", iterations=1000, _insecure_for_tests=True)
    assert sp.export_key() == legacy.export_key() and sp.members is None


def test_bad_specs_and_rows():
    st, me = MemoryStorage(), Identity.generate()
    for bad in (None, {}, {"name": "x"}, "invite"):
        with pytest.raises(ValidationError):
            spacestore.open_space(st, bad, identity=me)
    sp = spacestore.open_space(st, {"key": "11" * 32, "name": "k"}, identity=me)
    assert sp.members is None and spacestore.member_rows(sp, me.actor) == []
    admin = Space.generate("t", identity=me)
    rows = spacestore.member_rows(admin, me.actor)
    assert rows == [{"actor": me.actor.hex(), "fingerprint": me.fingerprint, "role": "admin", "me": True}]


def test_a_space_created_without_a_passphrase_is_kept_in_clear_and_opens_with_an_empty_spec():
    st, me = MemoryStorage(), Identity.generate()
    made = spacestore.open_space(st, {"create": True, "name": "notes"}, identity=me)
    assert spacestore.open_space(st, {}, identity=me).space_id == made.space_id
    # A database keeps one space: asking to create again opens the kept one.
    assert spacestore.open_space(st, {"create": True, "name": "x"}, identity=me).space_id == made.space_id
    locked = MemoryStorage()
    spacestore.open_space(locked, {"create": True, "passphrase": "pw", "name": "n"}, identity=me, **FAST)
    with pytest.raises(ValidationError):
        spacestore.open_space(locked, {}, identity=me)


def test_migration_moves_an_earlier_space_once():
    st, me = MemoryStorage(), Identity.generate()
    old = spacestore.legacy_space({"passphrase": "pw", "name": "family"}, **FAST)
    new = spacestore.migrate_space(st, old, identity=me, passphrase="new pw", iterations=1000, **FAST)
    assert new.role() == "admin" and new.room_id != old.room_id and new.name == "family"
    assert spacestore.open_space(st, {"passphrase": "new pw"}, identity=me, **FAST).space_id == new.space_id
    with pytest.raises(WrongKeyError):
        spacestore.open_space(st, {"passphrase": "pw"}, identity=me, **FAST)
    with pytest.raises(ValidationError):
        spacestore.migrate_space(st, old, identity=me, **FAST)
    with pytest.raises(ValidationError):  # only earlier passphrase spaces are migrated
        spacestore.migrate_space(MemoryStorage(), new, identity=me, **FAST)
