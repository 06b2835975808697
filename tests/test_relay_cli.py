"""Relay command-line glue: flags mirror RelayConfig, mailbox specs, bad input exits 2."""

from __future__ import annotations

import argparse
import os
import stat
from dataclasses import fields

from ostracon.core.errors import ValidationError
from ostracon.relay.cli import add_relay_arguments, backend_from_args, config_from_args, mailbox_from_args, main_relay
from ostracon.relay.mailbox import MemoryMailbox, SqliteMailbox
from ostracon.relay.server import RelayConfig


def parse(*argv):
    p = argparse.ArgumentParser()
    add_relay_arguments(p)
    return p.parse_args(list(argv))


def test_defaults_and_every_limit_has_a_flag():
    args = parse()
    assert (args.host, args.port) == ("127.0.0.1", 8787)
    assert config_from_args(args) == RelayConfig()
    help_text = argparse.ArgumentParser()
    add_relay_arguments(help_text)
    text = help_text.format_help()
    for f in fields(RelayConfig):
        assert "--" + f.name.replace("_", "-") in text
        assert f.metadata.get("doc"), f"{f.name} has no documented reason"


def test_overrides_and_off():
    args = parse("--max-frame-bytes", "2048", "--send-queue-bytes", "4096", "--rate-bytes-burst", "4096",
                 "--idle-timeout-s", "off", "--ping-interval-s", "5")
    cfg = config_from_args(args)
    assert cfg.max_frame_bytes == 2048 and cfg.idle_timeout_s is None and cfg.ping_interval_s == 5.0
    assert cfg.max_connections == RelayConfig().max_connections
    assert config_from_args(parse("--max-address-share", "0.5")).max_address_share == 0.5
    assert config_from_args(parse("--max-address-share", "off")).max_address_share is None



def test_http_connection_flags_reach_the_front_door_limits():
    cfg = config_from_args(parse("--http-keepalive-timeout-s", "1.5", "--http-max-requests-per-connection", "7",
                                 "--http-linger-s", "0.5"))
    limits = cfg.http_limits()
    assert (limits.keepalive_timeout_s, limits.max_requests_per_connection, limits.linger_s) == (1.5, 7, 0.5)
    assert RelayConfig().http_limits() == type(limits)(
        max_head_bytes=limits.max_head_bytes, max_body_bytes=limits.max_body_bytes)

def test_mailbox_from_args(tmp_path):
    mb = mailbox_from_args(parse("--mailbox", "memory", "--mailbox-max-room-bytes", "1000"))
    assert isinstance(mb, MemoryMailbox) and mb.max_room_bytes == 1000
    path = tmp_path / "deep" / "dir" / "relay.sqlite"
    mb = mailbox_from_args(parse("--mailbox", f"sqlite:{path}"))
    assert isinstance(mb, SqliteMailbox) and path.exists()
    mb.close()


def test_mailbox_files_are_private_and_default_to_the_xdg_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        mb = mailbox_from_args(parse())
        mb.append("ab" * 32, b"x")
        mb.close()
    finally:
        os.umask(old)
    path = tmp_path / "xdg" / "ostracon" / "relay" / "mailbox.sqlite"
    assert path.exists() and sorted(os.listdir(tmp_path)) == ["xdg"]  # nothing in the working directory
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for d in (path.parent, path.parent.parent, tmp_path / "xdg"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for sibling in path.parent.iterdir():  # -wal / -shm inherit the database file's mode
        assert stat.S_IMODE(sibling.stat().st_mode) & 0o077 == 0, sibling
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    mb = mailbox_from_args(parse())
    mb.close()
    assert (tmp_path / "home" / ".local" / "share" / "ostracon" / "relay" / "mailbox.sqlite").exists()


def test_backend_from_args():
    b = backend_from_args(parse("--mailbox", "memory"))
    assert isinstance(b.mailbox, MemoryMailbox) and b.name == "local"
    b.close()
    for bad in (("--backend", "postgres://x"), ("--backend", "redis://127.0.0.1:1/0", "--mailbox", "memory")):
        try:
            backend_from_args(parse(*bad))
        except ValidationError:
            pass
        else:
            raise AssertionError(f"{bad} accepted")


def test_bad_config_exits_2(capsys):
    assert main_relay(parse("--mailbox", "postgres:nope")) == 2
    assert main_relay(parse("--mailbox", "memory", "--send-queue-bytes", "10")) == 2
    assert main_relay(parse("--backend", "redis://127.0.0.1:1/0")) == 2  # nothing listens there
    assert "ostracon relay:" in capsys.readouterr().err
