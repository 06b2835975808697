"""`ostracon space …` (space_cli.py) end to end against a real relay process: create, invite,
join, members, sync, remove (the removed device gets nothing new), migrate."""

from __future__ import annotations

import os

import pytest

import ostracon
from ostracon.cli import main
from ostracon.crypto import spacefile
from ostracon.crypto.invites import parse_invite
from ostracon.crypto.space import Space
from ostracon.space_cli import SPACE_FILE
from relay_process import sqlite_relay


@pytest.fixture
def relay(tmp_path):
    r = sqlite_relay(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.kill()


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def write(path: str, doc_id: str) -> None:
    db = ostracon.open(path)
    db.collection("notes").create({"text": doc_id}, id=doc_id)
    db.close()


def ids(path: str) -> set[str]:
    db = ostracon.open(path)
    try:
        return {d["_id"] for d in db.collection("notes").iter_docs()}
    finally:
        db.close()


def test_create_invite_join_remove_through_the_cli(relay, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PW", "a long passphrase")
    a, b, c = (str(tmp_path / n) for n in "abc")
    run(capsys, "space", "create", a, "--name", "team", "--passphrase-env", "PW")
    assert main(["space", "members", a]) != 0  # wrapped: the passphrase is needed
    capsys.readouterr()
    inv_b = run(capsys, "space", "invite", a, relay.url, "--passphrase-env", "PW").strip()
    inv_c = run(capsys, "space", "invite", a, relay.url, "--role", "reader", "--passphrase-env", "PW").strip()
    run(capsys, "space", "join", b, inv_b)
    run(capsys, "space", "join", c, inv_c)
    write(a, "from-a")
    for path in (a, b, c, a):
        extra = ("--passphrase-env", "PW") if path == a else ()
        run(capsys, "space", "sync", path, "--relay", relay.url, "--timeout", "20", *extra)
    members = run(capsys, "space", "members", a, "--passphrase-env", "PW")
    assert [line.split()[2] for line in members.splitlines()].count("writer") == 1
    assert "reader" in members and "admin" in members
    for path in (b, c):
        run(capsys, "space", "sync", path, "--relay", relay.url, "--timeout", "20")
    assert "from-a" in ids(b) and "from-a" in ids(c)
    # Remove b; a writes; b syncs and gets nothing new, c does.
    b_actor = ostracon.open(b)
    actor = b_actor.identity.actor.hex()
    b_actor.close()
    run(capsys, "space", "remove", a, actor[:12], "--passphrase-env", "PW")
    write(a, "after")
    run(capsys, "space", "sync", a, "--relay", relay.url, "--timeout", "20", "--passphrase-env", "PW")
    run(capsys, "space", "sync", c, "--relay", relay.url, "--timeout", "20")
    run(capsys, "space", "sync", c, "--relay", relay.url, "--timeout", "20")
    main(["space", "sync", b, "--relay", relay.url, "--timeout", "5"])
    capsys.readouterr()
    assert "after" in ids(c) and "after" not in ids(b)


def test_migrate_a_passphrase_space_explicitly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OLD", "correct horse battery staple")
    path = str(tmp_path / "db")
    db = ostracon.open(path)
    old = Space.from_passphrase("correct horse battery staple", "family")
    from ostracon.sync.members import check_binding

    check_binding(db, old)  # the database synced this space before
    db.close()
    out = run(capsys, "space", "migrate", path, "--old-name", "family", "--old-passphrase-env", "OLD")
    assert "moved to space" in out
    assert "admin" in run(capsys, "space", "members", path)


def test_invite_and_sync_take_the_relay_as_an_option(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    run(capsys, "space", "create", a)
    inv = run(capsys, "space", "invite", a, "--relay", "ws://relay.example:8787").strip()
    assert parse_invite(inv).relay_url == "ws://relay.example:8787"
    # The positional form of earlier versions still works.
    inv = run(capsys, "space", "invite", a, "wss://other.example", "--role", "reader").strip()
    assert parse_invite(inv).relay_url == "wss://other.example" and parse_invite(inv).role == "reader"
    assert main(["space", "invite", a, "ws://x.example", "--relay", "ws://y.example"]) != 0
    assert "once" in capsys.readouterr().err
    assert main(["space", "invite", a]) != 0   # the creator's space file records no relay
    assert "--relay" in capsys.readouterr().err
    # A space file that records its relay (a device that joined has the invite's) needs none.
    run(capsys, "space", "join", b, run(capsys, "space", "invite", a, "--relay", "ws://r.example").strip())
    db = ostracon.open(a)
    path = str(tmp_path / "a" / SPACE_FILE)
    space = spacefile.load(path, identity=db.identity)
    space.relay_url = load_space(b).relay_url
    spacefile.save(space, path)
    db.close()
    assert parse_invite(run(capsys, "space", "invite", a).strip()).relay_url == "ws://r.example"


def load_space(path: str) -> Space:
    db = ostracon.open(path)
    try:
        return spacefile.load(os.path.join(path, SPACE_FILE), identity=db.identity)
    finally:
        db.close()


def test_the_relay_option_is_the_documented_form(capsys):
    with pytest.raises(SystemExit):
        main(["space", "invite", "--help"])
    text = capsys.readouterr().out
    assert "--relay URL" in text and "deprecated" in text
    with pytest.raises(SystemExit):
        main(["space", "sync", "--help"])
    assert "--relay URL" in capsys.readouterr().out
