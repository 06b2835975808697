"""The sync client's liveness: heartbeats find a connection that died without a close, the
runtime's network signal drops and resumes it, and writes reach connected peers without a
flush. Against the real relay, through a proxy that can silently drop packets."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import ostracon
from netproxy import DroppingProxy
from ostracon.core.errors import TransportError, ValidationError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.server import Relay, RelayConfig
from ostracon.sync.base import OFFLINE, ONLINE
from ostracon.sync.client import SyncClient
from ostracon.sync.native import WebSocketTransport, start_sync
from polling import until

CRYPTO = NativeCrypto()
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.3, tick_interval_s=0.02, settle_s=0.2)
# Library pings off: the client's own heartbeat must find the dead connection.
NO_LIBRARY_PINGS = dict(transport_options={"ping_interval": None, "open_timeout": 1.0})


def _space() -> Space:
    return Space.from_key(DeterministicRandom(3)(32), "test", crypto=CRYPTO)


def _db(i: int):
    # The sink's time trigger is out of the way: only the client's flush shares writes.
    return ostracon.open(random_bytes=DeterministicRandom(f"hb{i}"), sink_interval_ms=10**9)


@contextlib.asynccontextmanager
async def _members(relay: Relay, *members):
    """Sync handles, one per (db, options) in `members`, all in one space and dialling the
    relay (or `options["url"]`), with FAST timings unless overridden; every handle is stopped
    on exit, whatever the test did."""
    space = _space()
    handles = []
    try:
        for db, options in members:
            options = dict(options)
            url = options.pop("url", relay.url)
            handles.append(await start_sync(db, url, space, **{**FAST, **options}))
        yield handles
    finally:
        for h in handles:
            await h.stop()


def test_a_silently_dead_connection_goes_offline_then_reconnects_and_converges():
    async def main():
        a, b = _db(1), _db(2)
        states: list[str] = []
        async with Relay(RelayConfig(), port=0) as relay:
            proxy = await DroppingProxy("127.0.0.1", relay.port).start()
            dialler = dict(url=proxy.url, heartbeat_interval_s=0.2, heartbeat_timeout_s=0.3,
                           on_status=lambda s: states.append(s.state), **NO_LIBRARY_PINGS)
            try:
                async with _members(relay, (a, dialler), (b, {})) as (ha, _hb):
                    await until(lambda: ha.status.state == ONLINE, "online")
                    proxy.drop = True
                    await until(lambda: ha.status.state != ONLINE, "the dead connection to be noticed")
                    err = ha.status.last_error
                    assert isinstance(err, TransportError) and "heartbeat" in str(err)
                    assert OFFLINE in states
                    a.collection("n").create({"v": 1}, id="while-dead")
                    proxy.drop = False
                    await until(lambda: b.collection("n").get("while-dead") is not None, "convergence")
                    assert proxy.dropped_bytes > 0
            finally:
                await proxy.close()

    asyncio.run(main())


def test_the_network_signal_drops_the_connection_and_brings_it_back():
    async def main():
        async with Relay(RelayConfig(), port=0) as relay, _members(relay, (_db(1), {})) as (h,):
            await until(lambda: h.status.state == ONLINE, "online")
            connections = h.stats["connections"]
            h.set_network(False)
            await until(lambda: h.status.state == OFFLINE, "offline")
            assert "offline" in str(h.status.last_error)
            await asyncio.sleep(0.3)  # several backoff periods: no attempt while offline
            assert h.stats["connections"] == connections and h.status.state == OFFLINE
            h.set_network(True)
            await until(lambda: h.status.state == ONLINE, "online again")
            assert h.stats["connections"] == connections + 1

    asyncio.run(main())


def test_writes_reach_connected_peers_without_a_flush():
    async def main():
        a, b = _db(1), _db(2)
        async with Relay(RelayConfig(), port=0) as relay, _members(relay, (a, {}), (b, {})) as (ha, hb):
            await until(lambda: ha.status.peers == 1 and hb.status.peers == 1, "peers")
            a.collection("n").create({"v": 1}, id="x")
            ha.notify_local_change()
            await until(lambda: b.collection("n").get("x") is not None, "the write at the peer")

    asyncio.run(main())


def test_without_peers_writes_wait_for_the_sinks_own_triggers():
    async def main():
        a = _db(1)
        async with Relay(RelayConfig(), port=0) as relay, _members(relay, (a, {})) as (ha,):
            await until(lambda: ha.status.state == ONLINE, "online")
            a.collection("n").create({"v": 1}, id="x")
            ha.notify_local_change()
            await asyncio.sleep(0.3)
            assert ha.replica.pending_local() == 1

    asyncio.run(main())


@pytest.mark.parametrize("kw", [dict(heartbeat_interval_s=0), dict(heartbeat_timeout_s=-1),
                                dict(flush_debounce_s=-0.1)])
def test_liveness_parameters_are_checked(kw):
    with pytest.raises(ValidationError):
        SyncClient(_db(1), "ws://127.0.0.1:1", _space(), transport_factory=WebSocketTransport, **kw)
