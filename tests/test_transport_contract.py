"""The transport contract (tests/transport_contract.py) on every native transport: the relay
WebSocket, the peer-to-peer link to a peer's hub, and the in-process hub. The browser
transports run it under Pyodide in `make test-node` (e2e/runtime_checks.py)."""

from __future__ import annotations

import asyncio

import pytest

from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.server import Relay, RelayConfig
from ostracon.sync.base import Transport, TransportClosed
from ostracon.sync.broadcast import BroadcastTransport, LocalBroadcast
from ostracon.sync.native import WebSocketTransport, start_sync
from ostracon.sync.peer import LocalTransport, PeerHub, PeerTransport, room_of
from room_keys import new_room, remember
from transport_contract import run_contract

CRYPTO = NativeCrypto()
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.3, tick_interval_s=0.02, settle_s=0.2)


def _space(label: str) -> Space:
    return Space.from_key(DeterministicRandom(label)(32), "contract", crypto=CRYPTO)


class RelayEnv:
    name = "relay websocket"
    mailbox = True

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.space = _space("relay")
        remember(self.space)
        self.dead_url = "ws://127.0.0.1:9" + "/v1/room/" + "ab" * 32

    def make(self):
        return WebSocketTransport()

    async def new_room(self) -> str:
        return new_room()

    def room_url(self, room: str) -> str:
        return self.relay.room_url(room, 0)

    async def sync(self, db, i, **options):
        return await start_sync(db, self.relay.url, self.space, **{**FAST, **options})


class HubEnv:
    """A fresh hub (and space) per room, so no check sees another's members. `remote`: members
    dial the hub over a loopback WebSocket (PeerTransport); otherwise in-process members."""

    mailbox = False

    def __init__(self, remote: bool) -> None:
        self.remote = remote
        self.name = "peer-to-peer websocket" if remote else "in-process hub"
        self.hubs: dict[str, PeerHub] = {}
        self.space = _space(f"hub{remote}")
        remember(self.space)
        self.dead_url = None

    async def setup(self) -> HubEnv:
        await self._hub(self.space)
        if self.remote:
            self.dead_url = "ws://127.0.0.1:9/v1/room/" + self.space.room_id
        else:  # a room the hub does not hold
            self.dead_url = "ws://local/v1/room/" + "ab" * 32
        return self

    async def _hub(self, space: Space) -> PeerHub:
        hub = await PeerHub(space, listen=self.remote).start()
        self.hubs[space.room_id] = hub
        return hub

    async def close(self) -> None:
        for hub in self.hubs.values():
            await hub.close()

    def make(self):
        if self.remote:
            return PeerTransport()
        return _Routed(self.hubs)

    async def new_room(self) -> str:
        space = Space.from_key(CRYPTO.random_bytes(32), "room", crypto=CRYPTO)
        remember(space)
        await self._hub(space)
        return space.room_id

    def room_url(self, room: str) -> str:
        return f"{self.hubs[room].url}/v1/room/{room}"

    async def sync(self, db, i, **options):
        hub = self.hubs[self.space.room_id]
        factory = hub.transport if i == 0 or not self.remote else PeerTransport
        return await start_sync(db, hub.url, self.space, transport_factory=factory, **{**FAST, **options})


class _Routed(Transport):
    """An in-process member of whichever hub holds the room in the URL."""

    def __init__(self, hubs: dict[str, PeerHub]) -> None:
        self.hubs = hubs
        self.inner: Transport | None = None

    async def connect(self, url: str) -> None:
        hub = self.hubs.get(room_of(url), next(iter(self.hubs.values())))
        self.inner = LocalTransport(hub)
        await self.inner.connect(url)

    async def send(self, message: bytes) -> None:
        if self.inner is None:
            raise TransportClosed("not connected")
        await self.inner.send(message)

    async def recv(self) -> bytes:
        if self.inner is None:
            raise TransportClosed("not connected")
        return await self.inner.recv()

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()


def test_relay_websocket_meets_the_contract():
    async def main():
        async with Relay(RelayConfig(), port=0) as relay:
            passed = await run_contract(RelayEnv(relay))
            assert len(passed) == 10, passed

    asyncio.run(main())


@pytest.mark.parametrize("remote", [True, False], ids=["peer-to-peer websocket", "in-process hub"])
def test_hub_transport_meets_the_contract(remote: bool):
    async def main():
        env = await HubEnv(remote=remote).setup()
        try:
            passed = await run_contract(env)
            assert len(passed) == 9, passed
        finally:
            await env.close()

    asyncio.run(main())


class BroadcastEnv:
    """BroadcastTransport on the in-process medium (the browser's BroadcastChannel runs the
    same contract under Node in `make test-node`)."""

    name = "broadcast (in-process medium)"
    mailbox = False
    dead_url = None

    def __init__(self) -> None:
        self.medium = LocalBroadcast()
        self.space = _space("broadcast")
        remember(self.space)

    def make(self):
        return BroadcastTransport(self.medium.open, CRYPTO.random_bytes)

    async def new_room(self) -> str:
        return new_room()

    def room_url(self, room: str) -> str:
        return "ws://broadcast/v1/room/" + room

    async def sync(self, db, i, **options):
        return await start_sync(db, "ws://broadcast", self.space, transport_factory=self.make,
                                **{**FAST, **options})


def test_broadcast_transport_meets_the_contract():
    async def main():
        passed = await run_contract(BroadcastEnv())
        assert len(passed) == 9, passed

    asyncio.run(main())
