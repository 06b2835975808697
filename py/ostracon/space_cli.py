"""`ostracon space …`: create a space, invite and remove devices, list members, sync, and move a
passphrase space of an earlier version to a random space (docs/CRYPTO.md "Membership",
"Migration").

The space lives next to the database: ``<database>/space.ost`` (mode 0600), written by
crypto/spacefile.py. With ``--passphrase-env NAME`` the file is wrapped by the passphrase in
that environment variable (an argument would show in the process list); without it the file
holds the keys in clear, protected like the identity file next to it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

SPACE_FILE = "space.ost"


class SpaceCliError(Exception):
    pass


def _passphrase(args: argparse.Namespace, env: str | None = None) -> str | None:
    name = env if env is not None else args.passphrase_env
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise SpaceCliError(f"environment variable {name} is not set")
    return value


def _open_db(args: argparse.Namespace) -> Any:
    import ostracon

    return ostracon.open(args.path)


def _space_path(args: argparse.Namespace) -> str:
    return os.path.join(args.path, SPACE_FILE)


def _load(args: argparse.Namespace, db: Any) -> Any:
    from .crypto import spacefile

    path = _space_path(args)
    if not os.path.exists(path):
        raise SpaceCliError(f"no space file at {path}: run `ostracon space create` or `join` first")
    return spacefile.load(path, passphrase=_passphrase(args), identity=db.identity)


def _save(args: argparse.Namespace, space: Any) -> None:
    from .crypto import spacefile

    spacefile.save(space, _space_path(args), passphrase=_passphrase(args))


def _actor(space: Any, text: str) -> bytes:
    """A member by actor hex (or a unique prefix) or fingerprint."""
    from .crypto.identity import fingerprint_of

    text = text.strip().lower()
    hits = [m["actor"] for m in space.member_list()
            if m["actor"].hex().startswith(text) or fingerprint_of(m["actor"]) == text]
    if len(hits) != 1:
        raise SpaceCliError(f"{text!r} names {len(hits)} members (give more of the actor id)")
    return hits[0]


def _relay(given: str | None, space: Any) -> str:
    """The relay URL given on the command line, else the one the space file records."""
    relay = given or space.relay_url
    if not relay:
        raise SpaceCliError("give --relay URL (the space file records no relay)")
    return str(relay)


def cmd_space(args: argparse.Namespace) -> int:
    from .crypto.space import Space

    db = _open_db(args)
    try:
        if args.space_command == "create":
            if os.path.exists(_space_path(args)):
                raise SpaceCliError(f"{_space_path(args)} exists: this database already has a space")
            space = Space.generate(args.name, identity=db.identity)
            _save(args, space)
            print(f"created space {space.space_id.hex()} (room {space.room_id[:16]}…); you are its admin")
        elif args.space_command == "invite":
            if args.relay is not None and args.relay_positional is not None:
                raise SpaceCliError("give the relay once (--relay URL)")
            space = _load(args, db)
            text = space.invite(_relay(args.relay or args.relay_positional, space), role=args.role)
            _save(args, space)
            print(text)
        elif args.space_command == "join":
            if os.path.exists(_space_path(args)):
                raise SpaceCliError(f"{_space_path(args)} exists: this database already has a space")
            space = Space.from_invite(args.invite, identity=db.identity)
            _save(args, space)
            print(f"joined space {space.space_id.hex() or '(open)'}; sync to be admitted")
        elif args.space_command == "members":
            from .crypto.identity import fingerprint_of

            space = _load(args, db)
            for m in space.member_list():
                me = " (this device)" if m["actor"] == db.identity.actor else ""
                print(f"{m['actor'].hex()}  {fingerprint_of(m['actor'])}  {m['role']}{me}")
        elif args.space_command == "remove":
            space = _load(args, db)
            actor = _actor(space, args.member)
            space.remove(actor, upto=db.version_vector().get(actor.hex(), 0))
            _save(args, space)
            print("removed; the key was rotated — sync to hand the new key to the remaining members")
        elif args.space_command == "sync":
            space = _load(args, db)
            status = db.sync_blocking(_relay(args.relay, space), space, timeout=args.timeout)
            _save(args, space)
            print(f"synced: peers={status.peers} pending={status.pending} error={status.last_error!r}")
        elif args.space_command == "migrate":
            old = Space.from_passphrase(_passphrase(args, args.old_passphrase_env) or "", args.old_name)
            new = old.migrate(db.identity)
            from .sync.members import check_binding

            check_binding(db, new, rebind_from=old)
            _save(args, new)
            print(f"moved to space {new.space_id.hex()}; invite the other devices with `ostracon space invite`")
        return 0
    finally:
        db.close()


def add_space_arguments(sub: Any) -> None:
    """Register `ostracon space …` on the main parser's subcommands."""
    p = sub.add_parser("space", help="create/join a space, invite and remove devices, sync")
    p.set_defaults(fn=cmd_space)
    ss = p.add_subparsers(dest="space_command", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        s = ss.add_parser(name, help=help_)
        s.add_argument("path", help="database directory")
        s.add_argument("--passphrase-env", default=None, metavar="NAME",
                       help="wrap the space file with the passphrase in this environment variable")
        return s

    cmd("create", "a new space with this device as admin").add_argument("--name", default=None)
    relay_help = "relay URL (ws:// or wss://); default: the one the space file records"
    s = cmd("invite", "print a one-time invite for another device")
    s.add_argument("--relay", default=None, metavar="URL", help=relay_help)
    # The relay was a positional argument before `--relay` existed; scripts still pass it so.
    s.add_argument("relay_positional", nargs="?", default=None, metavar="RELAY",
                   help="deprecated: the same as --relay")
    s.add_argument("--role", default="writer", choices=["admin", "writer", "reader"])
    cmd("join", "join a space with an invite").add_argument("invite")
    cmd("members", "list members and roles")
    cmd("remove", "remove a member (rotates the key)").add_argument("member", help="actor id (prefix) or fingerprint")
    s = cmd("sync", "sync the database with its space once")
    s.add_argument("--relay", default=None, metavar="URL", help=relay_help)
    s.add_argument("--timeout", type=float, default=30.0)
    s = cmd("migrate", "move a passphrase space of an earlier version to a new random space")
    s.add_argument("--old-name", required=True, help="the old space's name")
    s.add_argument("--old-passphrase-env", required=True, metavar="NAME",
                   help="environment variable holding the old space's passphrase")
