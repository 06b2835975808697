"""Command-line glue for ``ostracon relay`` (wired by ostracon/cli.py) and ``python -m ostracon.relay``.

Every ``RelayConfig`` field becomes a flag (``max_frame_bytes`` → ``--max-frame-bytes``) whose
help text is the field's documented reason, so the CLI can never drift from the config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from ..core.errors import OstraconError, ValidationError
from .backend import Backend, LocalBus
from .mailbox import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_ROOM_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    Mailbox,
    default_data_dir,
    parse_mailbox_spec,
    private_dir,
)
from .server import Relay, RelayConfig, run_relay

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def _optional_float(text: str) -> float | None:
    if text.lower() in ("none", "off", "0"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', not {text!r}") from None


def add_relay_arguments(parser: argparse.ArgumentParser, *, include_listen: bool = True) -> None:
    """Add relay flags to ``parser``. ``include_listen=False`` leaves out --host/--port (for
    ``ostracon serve``, which defines its own)."""
    if include_listen:
        parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
        parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                            help=f"port to listen on, 0 for any free port (default {DEFAULT_PORT})")
    parser.add_argument("--mailbox", default=None,
                        help="'sqlite:PATH' or 'memory' (default sqlite:$XDG_DATA_HOME/ostracon/relay/mailbox.sqlite, "
                             "i.e. ~/.local/share/... when XDG_DATA_HOME is unset); new files are 0600 in 0700 "
                             "directories")
    parser.add_argument("--backend", default="local",
                        help="'local' (this process only, with --mailbox) or 'redis://host:port/db': mailbox, "
                             "limits and fan-out shared by every relay process on that Redis (default local)")
    parser.add_argument("--mailbox-max-room-bytes", type=int, default=DEFAULT_MAX_ROOM_BYTES,
                        help="bytes retained per room; oldest frames are dropped past it (default 64 MiB)")
    parser.add_argument("--mailbox-max-age-s", type=float, default=DEFAULT_MAX_AGE_S,
                        help="seconds a frame is retained (default 30 days)")
    parser.add_argument("--mailbox-max-total-bytes", type=int, default=DEFAULT_MAX_TOTAL_BYTES,
                        help="bytes retained over all rooms; past it the oldest frames of the writer holding "
                             "the most over all rooms are dropped (default 1 GiB)")
    parser.add_argument("--static-dir", default=None, help="also serve the files of this directory over HTTP")
    parser.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                        help="answer only requests whose Host header names NAME (repeatable; '*': any). "
                             "Default: on a loopback --host, loopback names only (stops DNS rebinding); "
                             "otherwise any, for a relay behind a proxy")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="logging level (payloads are never logged at any level)")
    add_limit_arguments(parser)


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per RelayConfig field (``ostracon relay`` and ``ostracon serve`` share them)."""
    group = parser.add_argument_group("relay limits")
    for f in fields(RelayConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        conv: Callable[[str], Any]
        if f.type == "int":
            conv = int
        elif "None" in str(f.type):
            conv = _optional_float
        else:
            conv = float
        group.add_argument(flag, dest=f"limit_{f.name}", type=conv, default=argparse.SUPPRESS,
                           metavar="N" if conv is int else "X" if conv is float
                           else "RATE|off" if f.name.endswith("_per_s")
                           else "SECONDS|off" if f.name.endswith("_s") else "X|off",
                           help=f"{f.metadata.get('doc', '')} (default {default})".replace("%", "%%"))


def config_from_args(args: argparse.Namespace) -> RelayConfig:
    # Limit flags default to SUPPRESS, so only flags actually given appear on ``args``
    # ("--idle-timeout-s off" sets None, which must differ from "not given").
    overrides = {f.name: getattr(args, f"limit_{f.name}") for f in fields(RelayConfig)
                 if hasattr(args, f"limit_{f.name}")}
    return RelayConfig(**overrides)


def mailbox_from_args(args: argparse.Namespace) -> Mailbox:
    spec = args.mailbox or "sqlite:" + str(default_data_dir() / "mailbox.sqlite")
    if spec.startswith("sqlite:"):
        path = Path(spec[len("sqlite:"):]).expanduser()
        try:
            private_dir(path.parent)
        except OSError as exc:
            raise ValidationError(f"cannot create mailbox directory {path.parent}: {exc.strerror}") from exc
        spec = "sqlite:" + str(path)
    return parse_mailbox_spec(spec, max_room_bytes=args.mailbox_max_room_bytes, max_age_s=args.mailbox_max_age_s,
                              max_total_bytes=args.mailbox_max_total_bytes)


def backend_from_args(args: argparse.Namespace) -> Backend:
    """``--backend local`` (default): ``--mailbox`` in this process; ``redis://...``: shared."""
    spec = getattr(args, "backend", "local")
    limits = dict(max_room_bytes=args.mailbox_max_room_bytes, max_age_s=args.mailbox_max_age_s,
                  max_total_bytes=args.mailbox_max_total_bytes)
    if spec == "local":
        return Backend(mailbox_from_args(args), LocalBus())
    if spec.startswith(("redis://", "rediss://", "unix://")):
        if args.mailbox is not None:
            raise ValidationError("--mailbox does not apply to a Redis backend (the mailbox lives in Redis)")
        from .redis_backend import redis_backend
        return redis_backend(spec, **limits)
    raise ValidationError(f"--backend must be 'local' or a redis:// URL, not {spec!r}")


def _setup_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(level.upper())


def main_relay(args: argparse.Namespace) -> int:
    """Run the relay in the foreground until SIGTERM/SIGINT. Returns the exit status."""
    try:
        config = config_from_args(args)
        backend = backend_from_args(args)
    except (OstraconError, ValidationError) as exc:
        print(f"ostracon relay: {exc}", file=sys.stderr)
        return 2
    _setup_logging(getattr(args, "log_level", "info"))

    def ready(relay: Relay) -> None:
        # One parseable line on stdout: tests and scripts read the bound port from it.
        print(f"ostracon relay listening on {relay.http_url} (rooms at {relay.url}/v1/room/<room_id>)", flush=True)

    try:
        asyncio.run(run_relay(config, args.host, args.port, backend, static_dir=args.static_dir, ready=ready,
                              allowed_hosts=getattr(args, "allowed_host", None)))
    except OSError as exc:
        print(f"ostracon relay: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        backend.close()
    return 0
