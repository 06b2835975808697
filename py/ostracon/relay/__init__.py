"""The relay: a dumb WebSocket server forwarding ciphertext between members of a room.

``ostracon.core.protocol.relay`` is pure (no websockets, no sqlite) so browser and native clients
import it; everything else here is loaded lazily on first use.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Relay": "server", "RelayConfig": "server", "run_relay": "server", "TokenBucket": "server",
    "Mailbox": "mailbox", "MemoryMailbox": "mailbox", "SqliteMailbox": "mailbox",
    "parse_mailbox_spec": "mailbox", "RoomInfo": "mailbox", "MailboxError": "mailbox",
    "HttpRequest": "http", "HttpResponse": "http", "StaticFiles": "http",
    "add_relay_arguments": "cli", "main_relay": "cli", "config_from_args": "cli",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ostracon.relay' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
