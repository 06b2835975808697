"""`ostracon identity`: create or show a database's signing identity (Ed25519 or ECDSA P-256).

A database directory keeps its identity in `identity.key` (db/opening.py); opening a new
directory makes an Ed25519 one. `ostracon identity new DIR --algorithm p256` writes a P-256
identity first, so every later open (and `ostracon import`) signs with it. The algorithm is
chosen per identity and recorded in every seal it signs (docs/CRYPTO.md, "Actor algorithms").
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .core.actors import ALGORITHMS, ED25519


class IdentityCliError(Exception):
    pass


def key_path(db_dir: str) -> str:
    from .db.opening import IDENTITY_FILE

    return os.path.join(db_dir, IDENTITY_FILE)


def ensure_identity(db_dir: str, algorithm: str | None) -> Any:
    """The identity of database directory `db_dir`, created with `algorithm` (default
    Ed25519) if it has none yet. IdentityCliError when the directory already has an
    identity of another algorithm than the one asked for."""
    from .crypto.identity import Identity

    path = key_path(db_dir)
    if not os.path.lexists(path):
        os.makedirs(db_dir, mode=0o700, exist_ok=True)
    ident = Identity.load_or_generate(path, algorithm=algorithm or ED25519)
    if algorithm is not None and ident.algorithm != algorithm:
        raise IdentityCliError(f"{db_dir} already has an identity of algorithm {ident.algorithm} ({path}); "
                               f"a database keeps the identity it was created with")
    return ident


def _describe(ident: Any, path: str) -> str:
    return (f"actor       {ident.actor_hex}\nalgorithm   {ident.algorithm}\n"
            f"fingerprint {ident.fingerprint}\nfile        {path}")


def cmd_identity(args: argparse.Namespace) -> int:
    from .core.errors import IdentityExistsError
    from .crypto.identity import Identity

    path = key_path(args.path)
    if args.action == "new":
        if os.path.lexists(path):
            raise IdentityCliError(f"{path} already exists (a database keeps its identity)")
        os.makedirs(args.path, mode=0o700, exist_ok=True)
        ident = Identity.generate(algorithm=args.algorithm)
        try:
            ident.save(path)
        except IdentityExistsError:
            raise IdentityCliError(f"{path} already exists (a database keeps its identity)") from None
    else:
        ident = Identity.load(path)
    print(_describe(ident, path))
    return 0


def add_identity_arguments(sub: Any) -> None:
    s = sub.add_parser("identity", help="create or show a database's signing identity")
    s.add_argument("action", choices=["new", "show"],
                   help="new: write DIR/identity.key (refuses an existing one); show: print it")
    s.add_argument("path", help="database directory")
    s.add_argument("--algorithm", choices=list(ALGORITHMS), default=ED25519,
                   help="signature algorithm of a new identity (default ed25519)")
    s.set_defaults(fn=cmd_identity)


def add_algorithm_argument(parser: argparse.ArgumentParser) -> None:
    """`--algorithm` for commands that may create a database (and with it, its identity)."""
    parser.add_argument("--algorithm", choices=list(ALGORITHMS), default=None,
                        help="signature algorithm if this creates the database's identity "
                             "(default ed25519; an existing identity must match)")
