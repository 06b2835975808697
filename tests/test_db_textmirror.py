"""A client copy of a text that lags remote edits (db/textmirror.py)."""

from __future__ import annotations

import random

import pytest

from ostracon import Text, ValidationError
from test_db_text import ID_A, ID_B, open_db, sync


def pair(body="hello world"):
    a, b = open_db(ID_A), open_db(ID_B, seed=2)
    na, nb = a.collection("notes"), b.collection("notes")
    na.create({"body": body}, id="n1")
    sync(a, b)
    return a, b, na, nb


def test_edits_in_a_lagging_copy_land_where_the_user_made_them():
    a, b, na, nb = pair(Text("hello world"))
    m = na.text("n1", "body").mirror()
    assert m.text == "hello world"
    nb.text("n1", "body").insert(0, "Oh, ")          # remote, not yet seen by the copy
    nb.text("n1", "body").insert(15, "!")
    sync(b, a)
    m.insert(5, ",")                                  # copy positions: after "hello"
    m.delete(7, 5)                                    # "world" in the copy ("hello, world")
    m.insert(7, "there")
    assert str(na.text("n1", "body")) == "Oh, hello, there!"
    text, (caret,), token = m.pull([12])              # the copy's caret after "there"
    assert text == "Oh, hello, there!" and text[:caret] == "Oh, hello, there"
    assert m.adopt(token)
    m.insert(caret, "?")
    assert str(na.text("n1", "body")) == "Oh, hello, there?!"


def test_deleting_keeps_text_inserted_concurrently_inside_the_range():
    a, b, na, nb = pair(Text("abcdef"))
    m = na.text("n1", "body").mirror()
    nb.text("n1", "body").insert(3, "XY")
    sync(b, a)
    m.delete(1, 4)                                    # "bcde" of the copy
    assert str(na.text("n1", "body")) == "aXYf"


@pytest.mark.parametrize("body", [Text("hello world"), "hello world"])   # a text, or a plain string
@pytest.mark.parametrize("bad", ["bye\ud800", b"bye", None])
def test_a_refused_splice_changes_nothing(body, bad):
    a, _, na, _ = pair(body)
    m = na.text("n1", "body").mirror()
    with pytest.raises(ValidationError):
        m.splice(0, 5, bad)
    assert str(na.text("n1", "body")) == "hello world" and m.copy_length() == 11
    m.splice(0, 5, "bye")
    assert str(na.text("n1", "body")) == "bye world"


def test_an_adopt_after_an_edit_is_refused_and_positions_stay_in_the_copy():
    a, b, na, nb = pair(Text("abc"))
    m = na.text("n1", "body").mirror()
    _, _, token = m.pull()
    m.insert(3, "d")
    assert not m.adopt(token)
    m.insert(4, "e")                                  # still the old copy's positions
    assert str(na.text("n1", "body")) == "abcde"
    with pytest.raises(ValidationError):
        m.insert(6, "x")


def test_a_plain_body_migrates_at_the_first_edit_and_two_copies_keep_one_seed():
    a, b, na, nb = pair("old body")
    ma, mb = na.text("n1", "body").mirror(), nb.text("n1", "body").mirror()
    assert ma.text == mb.text == "old body"
    ma.insert(8, " A")
    mb.insert(0, "B ")
    sync(a, b)
    sync(b, a)
    assert na.get("n1")["body"] == nb.get("n1")["body"] == "B old body A"


@pytest.mark.parametrize("seed", range(5))
def test_random_edits_in_lagging_copies_converge_and_keep_every_typed_character(seed):
    rng = random.Random(seed)
    try:
        a, b, na, nb = pair(Text("0123456789"))
        copies = [(a, na.text("n1", "body").mirror(), list("0123456789")),
                  (b, nb.text("n1", "body").mirror(), list("0123456789"))]
        typed = []
        for step in range(60):
            db, m, local = copies[rng.randrange(2)]
            if rng.random() < 0.7 or not local:
                pos, ch = rng.randint(0, len(local)), f"<{step}>"
                m.insert(pos, ch)
                local[pos:pos] = ch
                typed.append(ch)
            else:
                pos = rng.randrange(len(local))
                m.delete(pos, 1)
                del local[pos]
            if rng.random() < 0.3:
                sync(a, b)
                sync(b, a)
            if rng.random() < 0.3:
                text, _, token = m.pull()
                assert m.adopt(token)
                local[:] = text
        sync(a, b)
        sync(b, a)
        final = na.get("n1")["body"]
        assert final == nb.get("n1")["body"]
        assert a.state_hash() == b.state_hash()
        for ch in typed:
            assert final.count(ch) <= 1
    except AssertionError:
        print(f"seed={seed}")
        raise


def test_a_plain_copy_maps_through_the_seed_after_another_device_migrated_it():
    a, b, na, nb = pair("plain body")
    mb = nb.text("n1", "body").mirror()          # B's copy: the plain string
    ma = na.text("n1", "body").mirror()
    ma.insert(0, "A: ")                              # A migrates it and types
    sync(a, b)
    mb.insert(10, "!")                               # B types at the end of ITS copy
    text, (caret,), token = mb.pull([11])
    assert text == "A: plain body!" and caret == len(text)
    assert mb.adopt(token)
    local = nb.text("n1", "body").mirror()
    local.insert(0, "x")
    sync(b, a)
    assert na.get("n1")["body"] == nb.get("n1")["body"] == "xA: plain body!"
