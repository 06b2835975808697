"""The ``Host`` allow-list the relay checks on every HTTP and WebSocket request.

Checking ``Host`` is what stops DNS rebinding: a page on ``evil.example`` whose name was
re-pointed at 127.0.0.1 reaches a loopback socket but still sends ``Host: evil.example``.
The public names are re-exported by :mod:`ostracon.relay.http`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

#: Host names a browser uses for a server bound to a loopback address.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})

#: In an allowed-host list, turns the Host check off (a relay behind a proxy that rewrites Host).
ANY_HOST = "*"


def _is_loopback(bind_host: str) -> bool:
    if bind_host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind_host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_allowed_hosts(bind_host: str, allowed: Collection[str] | None) -> frozenset[str] | None:
    """The Host allow-list a server bound to ``bind_host`` enforces (None: any host).

    Given names are lower-cased; :data:`ANY_HOST` among them turns the check off. Without
    names, a loopback bind answers :data:`LOOPBACK_NAMES` and its own address only: anything
    else reaching a loopback socket is a browser page whose own name was re-pointed at this
    machine (DNS rebinding). Any other bind allows any host, for a relay behind a proxy that
    routes by name; such a relay should be given its names.
    """
    if allowed is not None:
        names = frozenset(h.lower() for h in allowed)
        return None if ANY_HOST in names else names
    if not _is_loopback(bind_host):
        return None
    host = bind_host.lower().strip("[]")
    if host == "localhost" or ":" in host:
        return LOOPBACK_NAMES
    return LOOPBACK_NAMES | {host}


def host_allowed(host: str | None, allowed: frozenset[str] | None) -> bool:
    """True when the request's ``Host`` (port stripped, lower-cased) is in ``allowed``.

    ``allowed=None`` accepts any host. Checking Host is what stops DNS rebinding: a page on
    ``evil.example`` whose name was re-pointed at 127.0.0.1 still sends ``Host: evil.example``.
    """
    if allowed is None:
        return True
    if not host:
        return False
    h = host.strip().lower()
    if h.startswith("["):  # [v6]:port
        h = h[: h.find("]") + 1] if "]" in h else h
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h in allowed
