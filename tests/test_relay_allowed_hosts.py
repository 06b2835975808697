"""The Host allow-list against DNS rebinding (relay/_allowed_hosts.py)."""

from __future__ import annotations

import pytest

from ostracon.relay.http import ANY_HOST, LOOPBACK_NAMES, host_allowed, resolve_allowed_hosts


def test_default_allowed_hosts_follow_the_bind_address():
    assert resolve_allowed_hosts("127.0.0.1", None) == {"127.0.0.1", "localhost", "[::1]"}
    assert resolve_allowed_hosts("127.0.0.2", None) == {"127.0.0.2", "127.0.0.1", "localhost", "[::1]"}
    assert resolve_allowed_hosts("::1", None) == {"127.0.0.1", "localhost", "[::1]"}
    assert resolve_allowed_hosts("localhost", None) == {"127.0.0.1", "localhost", "[::1]"}
    # Reachable from elsewhere: names are the operator's to give (a proxy may route by name).
    assert resolve_allowed_hosts("0.0.0.0", None) is None
    assert resolve_allowed_hosts("192.0.2.5", None) is None
    assert resolve_allowed_hosts("127.0.0.1", ["Relay.Example"]) == {"relay.example"}
    assert resolve_allowed_hosts("127.0.0.1", ["*"]) is None
    assert resolve_allowed_hosts("127.0.0.1", []) == frozenset()


@pytest.mark.parametrize(("host", "allowed"), [
    ("localhost", True), ("LOCALHOST:8080", True), ("127.0.0.1:443", True), ("[::1]:8080", True),
    ("[::1]", True), (" localhost ", True),
    ("evil.example", False), ("evil.example:8080", False), ("localhost.evil.example", False),
    ("[::2]:8080", False), ("::1", False), ("", False), (None, False),
])
def test_host_is_checked_without_its_port_and_case(host, allowed):
    assert host_allowed(host, LOOPBACK_NAMES) is allowed


def test_no_allow_list_accepts_any_host():
    assert resolve_allowed_hosts("127.0.0.1", [ANY_HOST, "a.example"]) is None
    assert host_allowed("evil.example", None) and host_allowed(None, None)
