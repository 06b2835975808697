"""Peer-to-peer sync without a relay (sync/peer.py): two real device processes and this test's
own database sync through one device's hub; the mutual room-key admission refuses a dialer
and a listener that do not hold the key. The transport contract itself runs in
tests/test_transport_contract.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

import ostracon
from ostracon.core.protocol import peerlink as L
from ostracon.core.protocol import relay as P
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay.admission import verify_answer
from ostracon.sync.base import TransportClosed
from ostracon.sync.native import start_sync
from ostracon.sync.peer import PeerHub, PeerTransport, TokenBucket
from polling import until

CRYPTO = NativeCrypto()
SEED = int(os.environ.get("OSTRACON_PEER_SEED", "5"))
HERE = os.path.dirname(os.path.abspath(__file__))
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.5, tick_interval_s=0.02, settle_s=0.2)


def _space(label: str) -> Space:
    return Space.from_key(DeterministicRandom(label)(32), "peers", crypto=CRYPTO)


def _child(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(HERE), "py"), HERE]))
    return subprocess.Popen([sys.executable, os.path.join(HERE, "peer_child.py"), *args], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


async def _line(proc: subprocess.Popen, prefix: str) -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    assert line.startswith(prefix), f"seed {SEED}: child said {line!r}, expected {prefix!r}"
    return line.split()[1]


def test_two_processes_and_this_one_sync_directly_without_a_relay(tmp_path):
    space = _space(f"process{SEED}")
    key = DeterministicRandom(f"process{SEED}")(32).hex()
    counts = (30, 20, 10)
    total = str(sum(counts))

    async def main():
        host = _child(["host", str(tmp_path / "host"), key, str(SEED), str(counts[0]), total])
        dialer = None
        db = ostracon.open(random_bytes=DeterministicRandom(f"mine{SEED}"))
        client = None
        try:
            port = await _line(host, "listening")
            url = f"ws://127.0.0.1:{port}"
            dialer = _child(["dial", url, str(tmp_path / "dialer"), key, str(SEED + 1), str(counts[1]), total])
            for n in range(counts[2]):
                db.collection("notes").create({"by": "test", "n": n})
            client = await start_sync(db, url, space, transport_factory=PeerTransport, **FAST)
            await until(lambda: db.collection("notes").count() == sum(counts), f"all notes here (seed {SEED})")
            await client.wait_synced(120)
            hashes = {await _line(host, "synced"), await _line(dialer, "synced")}
            await until(lambda: db.state_hash() in hashes and len(hashes) == 1,
                        f"three devices converge (seed {SEED}): {hashes}")
        finally:
            if client is not None:
                await client.stop()
            db.close()
            for proc in (dialer, host):
                if proc is not None:
                    proc.stdin.close()
                    proc.wait(60)
        assert host.returncode == 0 and dialer.returncode == 0

    asyncio.run(main())


def _auth(space, nonce: bytes, url: str) -> bytes:
    """The sync client's answer to a (derived) challenge, bound to the name it dialled."""
    name = P.relay_name(url)
    return P.encode_auth(space.sign_challenge(nonce, relay=name), name)


async def _raw_dial(hub: PeerHub, room: str) -> tuple[PeerTransport, P.Challenge]:
    t = PeerTransport()
    await t.connect(f"{hub.url}/v1/room/{room}")
    challenge = P.decode_server_message(await t.recv())
    assert isinstance(challenge, P.Challenge)
    return t, challenge


def test_a_dialer_without_the_room_key_is_refused():
    async def main():
        space, other = _space("a"), _space("b")
        async with PeerHub(space) as hub:
            t, challenge = await _raw_dial(hub, space.room_id)
            # Signed with another space's room key: the hub closes with 4003, sends nothing.
            await t.send(_auth(other, challenge.nonce, hub.url))
            with pytest.raises(TransportClosed) as exc:
                while True:
                    m = P.decode_server_message(await asyncio.wait_for(t.recv(), 30))
                    assert not isinstance(m, P.Welcome), "admitted with another space's key"
            assert exc.value.code == P.CLOSE_NOT_ADMITTED
            assert hub.stats == {"admitted": 0, "refused": 1, "closed": 0}
            # A room the hub does not hold is refused as well, before any challenge.
            t2 = PeerTransport()
            await t2.connect(f"{hub.url}/v1/room/{other.room_id}")
            with pytest.raises(TransportClosed) as exc:
                await t2.recv()
            assert exc.value.code == P.CLOSE_NOT_ADMITTED
            await t.close()
            await t2.close()

    asyncio.run(main())


@pytest.mark.parametrize("fake", ["bogus proof", "no challenge", "proof for another room"])
def test_a_listener_without_the_room_key_is_refused(fake):
    """A listener that does not prove the room key never gets a welcome to the sync client."""
    from websockets.asyncio.server import serve

    space, other = _space("real"), _space("impostor")

    async def impostor(ws):
        welcome = P.encode_welcome(P.Welcome(1, L.LINK_EPOCH, 0, 1, 1 << 20, 2))
        if fake == "no challenge":
            await ws.send(welcome)
        else:
            nonce = CRYPTO.random_bytes(32)
            await ws.send(P.encode_challenge(P.Challenge(1, nonce)))
            _sig, theirs = L.decode_peer_auth(await ws.recv())
            if fake == "bogus proof":
                proof = CRYPTO.random_bytes(64)
            else:
                proof = other.sign_challenge(L.peer_challenge(L.ROLE_HOST, nonce, theirs),
                                             relay=ws.request.headers["Host"].lower())
            await ws.send(L.encode_peer_proof(proof))
            await ws.send(welcome)
        await ws.wait_closed()

    async def main():
        async with serve(impostor, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            t = PeerTransport()
            await t.connect(f"ws://127.0.0.1:{port}/v1/room/{space.room_id}")
            seen = []
            with pytest.raises(TransportClosed) as exc:
                while True:
                    m = P.decode_server_message(await asyncio.wait_for(t.recv(), 30))
                    seen.append(type(m).__name__)
                    if isinstance(m, P.Challenge):
                        await t.send(_auth(space, m.nonce, f"ws://127.0.0.1:{port}"))
            assert exc.value.code == P.CLOSE_NOT_ADMITTED
            assert "Welcome" not in seen
            await t.close()

    asyncio.run(main())


def test_a_peer_link_signature_is_no_answer_to_a_relay_challenge():
    """What a dialer signs is bound to both nonces and its role: a listener that relays a
    relay's challenge to a member gets nothing it can use there."""
    space = _space("oracle")
    relay_nonce, dialer_nonce = CRYPTO.random_bytes(32), CRYPTO.random_bytes(32)
    name = "relay.example"
    sig = space.sign_challenge(L.peer_challenge(L.ROLE_DIALER, relay_nonce, dialer_nonce), relay=name)
    assert verify_answer(space.room_id, relay_nonce, P.encode_auth(sig, name), name) is not None
    assert verify_answer(space.room_id, relay_nonce, _auth(space, relay_nonce, f"wss://{name}"), name) is None
    host_view = P.auth_message(space.current.room, L.peer_challenge(L.ROLE_HOST, relay_nonce, dialer_nonce), name)
    assert not CRYPTO.ed25519_verify(space.current.room, host_view, sig)


def test_token_bucket_allows_the_burst_then_asks_to_wait():
    b = TokenBucket(10.0, 5, now=100.0)
    assert [b.charge(1, 100.0) for _ in range(5)] == [0.0] * 5
    assert b.charge(1, 100.0) == pytest.approx(0.1)     # one token short at 10/s
    assert b.charge(0, 100.3) == 0.0                     # refilled meanwhile
    assert b.charge(1, 50.0) >= 0.0                      # a clock going back refills nothing


def test_a_token_bucket_take_debits_only_what_it_holds():
    b = TokenBucket(0.5, 2, now=0.0)
    assert [b.take(1, 0.0) for _ in range(3)] == [True, True, False]
    assert b.tokens == 0.0                                # a refused take debits nothing
    assert not b.take(1, 1.0) and b.take(1, 2.0)          # one token per 2 s


def test_a_member_over_its_rate_is_slowed_never_cut_off():
    """Throttled by backpressure: every frame of a push beyond the burst still arrives, in order."""
    async def main():
        space = _space("rate")
        async with PeerHub(space, rate_frames_per_s=200.0, rate_frames_burst=5) as hub:
            room = space.room_id
            fast, ch = await _raw_dial(hub, room)
            await fast.send(_auth(space, ch.nonce, hub.url))
            listener = hub.transport()
            await listener.connect(f"{hub.url}/v1/room/{room}")
            sent = [b"\xa1" + bytes([i]) for i in range(40)]
            for payload in sent:
                await fast.send(P.encode_ephemeral(payload))
            got = []
            while len(got) < len(sent):
                m = P.decode_server_message(await asyncio.wait_for(listener.recv(), 30))
                if isinstance(m, P.Ephemeral):
                    got.append(m.payload)
            assert got == sent and hub.stats["closed"] == 0
            await fast.close()
            await listener.close()

    asyncio.run(main())


def test_a_full_hub_closes_the_newcomer_with_try_again():
    async def main():
        space = _space("full")
        async with PeerHub(space, max_members=1) as hub:
            inside = hub.transport()
            await inside.connect(f"{hub.url}/v1/room/{space.room_id}")
            t, ch = await _raw_dial(hub, space.room_id)
            await t.send(_auth(space, ch.nonce, hub.url))
            with pytest.raises(TransportClosed) as exc:
                while True:
                    await asyncio.wait_for(t.recv(), 30)
            assert exc.value.code == P.CLOSE_TRY_AGAIN
            await t.close()
            await inside.close()

    asyncio.run(main())


def test_connections_waiting_for_admission_are_bounded():
    async def main():
        space = _space("pending")
        async with PeerHub(space, max_pending=2) as hub:
            waiting = [await _raw_dial(hub, space.room_id) for _ in range(2)]   # never answer
            t = PeerTransport()
            await t.connect(f"{hub.url}/v1/room/{space.room_id}")
            with pytest.raises(TransportClosed) as exc:
                await asyncio.wait_for(t.recv(), 30)
            assert exc.value.code == P.CLOSE_TRY_AGAIN
            for w, _ in waiting:
                await w.close()
            await t.close()
            # Once they are gone, a member gets in again.
            await until(lambda: hub.pending == 0, "the waiting connections are released")
            again, ch = await _raw_dial(hub, space.room_id)
            await again.send(_auth(space, ch.nonce, hub.url))
            assert isinstance(P.decode_server_message(await asyncio.wait_for(again.recv(), 30)), P.Welcome)
            await again.close()

    asyncio.run(main())
