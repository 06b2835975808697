"""The contract every sync Transport (sync/base.py) meets, whatever carries it: a relay
(WebSocket, native or browser), a peer's hub (P2P), the in-process hub, a BroadcastChannel.

Usage (any runtime with an asyncio loop):

    from transport_contract import CHECKS, run_contract
    await run_contract(env)            # every check; AssertionError names the failing one

`env` describes one transport and the room medium behind it:

    env.name                     str, for messages
    env.make()                   a fresh, unconnected Transport
    await env.new_room()         a room id whose key `room_keys` holds (room_keys.remember)
    env.room_url(room)           the URL a transport connects to for that room
    env.dead_url                 a URL no connection succeeds to, or None when the medium is
                                 always reachable (a BroadcastChannel)
    env.space                    the Space whose room `env.sync` joins
    env.sync(db, i, **options)   awaitable: a started SyncClient for replica number i
    env.mailbox                  True when the room stores frames (a relay): `since` replays

Each check raises AssertionError on failure. Randomised checks take their seed from
`OSTRACON_CONTRACT_SEED` (default 7) and print it in every failure message.
"""

from __future__ import annotations

import asyncio
import os
import random

from ostracon.core.protocol import relay as P
from ostracon.sync.base import TransportClosed
from room_keys import auth

SEED = int(os.environ.get("OSTRACON_CONTRACT_SEED", "7"))
#: Safety net for one receive: never a performance threshold.
WAIT_S = 30.0


async def _recv(t):
    return P.decode_server_message(await asyncio.wait_for(t.recv(), WAIT_S))


async def join(env, room):
    """Connect a fresh transport to `room`, pass admission if asked, read up to caught-up."""
    t = env.make()
    await t.connect(env.room_url(room))
    first = await _recv(t)
    if isinstance(first, P.Challenge):
        await t.send(auth(room, first.nonce, P.relay_name(env.room_url(room))))
        first = await _recv(t)
    assert isinstance(first, P.Welcome), f"{env.name}: expected welcome, got {first!r}"
    while not isinstance(await _recv(t), P.CaughtUp):
        pass
    return t, first


async def _payloads(t, count, *, skip_other=True):
    """The next `count` frame payloads (stored or live) `t` receives, in order."""
    got = []
    while len(got) < count:
        m = await _recv(t)
        if isinstance(m, (P.Frame, P.Ephemeral)):
            got.append(m.payload)
        elif not skip_other:
            raise AssertionError(f"unexpected {m!r}")
    return got


async def _until_peers(t, count):
    while True:
        m = await _recv(t)
        if isinstance(m, P.Peers) and m.count == count:
            return


async def _closed(op):
    try:
        await asyncio.wait_for(op(), WAIT_S)
    except TransportClosed as exc:
        return exc
    raise AssertionError("expected TransportClosed")


async def check_welcome_counts_members(env):
    room = await env.new_room()
    a, wa = await join(env, room)
    assert wa.members == 1, f"{env.name}: alone in a fresh room, got members={wa.members}"
    b, wb = await join(env, room)
    if wb.members != 2:  # a medium that discovers members may count the other one later
        await _until_peers(b, 2)
    await _until_peers(a, 2)
    await b.close()
    await _until_peers(a, 1)
    await a.close()


async def check_ordered_delivery(env):
    """Publishes and ephemerals from one member reach another in the order they were sent;
    every publish is acknowledged to its sender."""
    room = await env.new_room()
    a, _ = await join(env, room)
    b, _ = await join(env, room)
    sent = []
    for i in range(60):
        payload = b"\xa1" + i.to_bytes(2, "big") * (1 + i * 7)
        sent.append(payload)
        await a.send(P.encode_publish(payload) if i % 3 else P.encode_ephemeral(payload))
    assert await _payloads(b, len(sent)) == sent, f"{env.name}: frames arrived out of order"
    acks = 0
    while acks < 40:
        if isinstance(await _recv(a), P.Ack):
            acks += 1
    await a.close()
    await b.close()


async def check_join_while_frames_flow(env):
    """A member joining while others are sending gets its welcome first, then frames."""
    room = await env.new_room()
    a, _ = await join(env, room)

    async def stream():
        for i in range(200):
            await a.send(P.encode_ephemeral(b"\xa1" + i.to_bytes(2, "big")))
            await asyncio.sleep(0)

    sender = asyncio.ensure_future(stream())
    b, _ = await join(env, room)   # asserts the welcome comes first
    await sender
    await a.send(P.encode_ephemeral(b"\xa1last"))
    while (await _payloads(b, 1)) != [b"\xa1last"]:
        pass
    await a.close()
    await b.close()


async def check_reconnect(env):
    """A member that closed can come back with a new transport, and is heard again."""
    room = await env.new_room()
    a, _ = await join(env, room)
    b, _ = await join(env, room)
    await b.close()
    await _until_peers(a, 1)
    b2, w = await join(env, room)
    if w.members != 2:
        await _until_peers(b2, 2)
    await b2.send(P.encode_ephemeral(b"\xa1back"))
    assert await _payloads(a, 1) == [b"\xa1back"]
    await a.send(P.encode_ephemeral(b"\xa1hello"))
    assert await _payloads(b2, 1) == [b"\xa1hello"]
    await a.close()
    await b2.close()


async def check_oversize_frame_is_refused(env):
    """A message over the welcome's max_frame_bytes ends that connection with TransportClosed
    (code 1009); the other members go on."""
    room = await env.new_room()
    a, wa = await join(env, room)
    b, _ = await join(env, room)
    c, _ = await join(env, room)

    async def oversize():
        await a.send(P.encode_publish(b"\xa1" * wa.max_frame_bytes))
        while True:
            await a.recv()

    exc = await _closed(oversize)
    assert exc.code == P.CLOSE_TOO_BIG, f"{env.name}: close code {exc.code}"
    await b.send(P.encode_ephemeral(b"\xa1still"))
    assert await _payloads(c, 1) == [b"\xa1still"]
    await a.close()
    await b.close()
    await c.close()


async def check_close_semantics(env):
    room = await env.new_room()
    a, _ = await join(env, room)
    b, _ = await join(env, room)
    async def receive_forever():
        while True:
            await b.recv()

    pending = asyncio.ensure_future(receive_forever())
    await asyncio.sleep(0)
    await b.close()
    await b.close()  # idempotent
    exc = await _closed(lambda: pending)
    assert isinstance(exc, TransportClosed)
    await _closed(b.recv)
    await _closed(lambda: b.send(P.encode_ephemeral(b"\xa1x")))
    await _until_peers(a, 1)  # the others see the member leave
    await a.close()
    fresh = env.make()
    await _closed(fresh.recv)  # never connected
    await fresh.close()


async def check_hostile_member_does_not_stop_honest_work(env):
    """A member sending junk (random payloads, unknown kinds, empty messages) is at most closed
    itself; honest members' frames keep flowing, in order."""
    rng = random.Random(SEED)
    room = await env.new_room()
    a, _ = await join(env, room)
    b, _ = await join(env, room)
    h, _ = await join(env, room)
    sink = asyncio.ensure_future(_discard(h))
    sent = []
    junk = [bytes([0xA1]) + rng.randbytes(rng.randrange(1, 300)) for _ in range(20)]
    try:
        for i, j in enumerate(junk):
            await h.send(P.encode_publish(j) if i % 2 else P.encode_ephemeral(j))
            payload = b"\xa1honest" + bytes([i])
            sent.append(payload)
            await a.send(P.encode_publish(payload))
        for bad in (bytes([0x7F]) + rng.randbytes(16), b"\x01", bytes([P.C_PING]) + b"x" * 40):
            await h.send(bad)
    except TransportClosed:
        pass  # closed for its junk: allowed
    honest = []
    while len(honest) < len(sent):
        (p,) = await _payloads(b, 1)
        if p.startswith(b"\xa1honest"):
            honest.append(p)
    assert honest == sent, f"{env.name}: honest frames lost or reordered (seed {SEED})"
    acks = 0
    while acks < len(sent):  # the honest sender's publishes were all taken in
        if isinstance(await _recv(a), P.Ack):
            acks += 1
    await h.close()
    sink.cancel()
    await a.close()
    await b.close()


async def check_unreachable_fails_cleanly(env):
    if env.dead_url is None:
        return  # an always-reachable medium (BroadcastChannel): nothing to refuse
    t = env.make()
    try:
        await _closed(lambda: t.connect(env.dead_url))
    finally:
        await t.close()


async def _discard(t):
    """Read and drop everything (a member that never reads holds up its own close)."""
    while True:
        try:
            await t.recv()
        except TransportClosed:
            return


async def check_replicas_converge(env):
    """Three databases syncing through this transport converge (same state hash and heads),
    with writes made offline, live, and a hostile member spraying junk frames meanwhile."""
    import ostracon
    from ostracon.crypto import DeterministicRandom
    from polling import until

    rng = random.Random(SEED)
    dbs = [ostracon.open(random_bytes=DeterministicRandom(f"contract{SEED}/{i}")) for i in range(3)]
    for i, db in enumerate(dbs):
        for n in range(rng.randrange(5, 25)):
            db.collection("notes").create({"by": i, "n": n, "x": rng.random()})
        db.collection("shared").upsert("s", {f"f{i}": rng.randrange(1000)})
    clients = []
    hostile = None
    try:
        for i, db in enumerate(dbs):
            clients.append(await env.sync(db, i))
        hostile, _ = await join(env, env.space.room_id)
        sink = asyncio.ensure_future(_discard(hostile))
        for _ in range(10):
            await hostile.send(P.encode_publish(bytes([0xA1]) + rng.randbytes(rng.randrange(40, 400))))

        def converged():
            return len({db.state_hash() for db in dbs}) == 1 and len({tuple(db.heads()) for db in dbs}) == 1

        await until(converged, f"{env.name}: replicas converge (seed {SEED})")
        for i, db in enumerate(dbs):  # live writes after the first exchange
            db.collection("shared").upsert("s", {f"g{i}": rng.randrange(1000)})
            db.flush()
            clients[i].notify_local_change()
        await until(converged, f"{env.name}: replicas converge after live writes (seed {SEED})")
        doc = dbs[0].collection("shared").get("s")
        assert all(f"g{i}" in doc for i in range(3)), f"seed {SEED}: {doc}"
        assert sum(sum(c.status.dropped.values()) for c in clients) > 0, \
            f"{env.name}: the junk frames were not seen as dropped (seed {SEED})"
    finally:
        if hostile is not None:
            await hostile.close()
            sink.cancel()
        for c in clients:
            await c.stop()
        for db in dbs:
            db.close()


CHECKS = [
    check_welcome_counts_members,
    check_ordered_delivery,
    check_join_while_frames_flow,
    check_reconnect,
    check_oversize_frame_is_refused,
    check_close_semantics,
    check_hostile_member_does_not_stop_honest_work,
    check_unreachable_fails_cleanly,
    check_replicas_converge,
]


async def check_mailbox_replay_with_since(env):
    """Relays only (env.mailbox): a join with `since` replays the stored frames after it."""
    room = await env.new_room()
    a, _ = await join(env, room)
    for i in range(3):
        await a.send(P.encode_publish(bytes([0xA1, i])))
    acks = 0
    while acks < 3:
        if isinstance(await _recv(a), P.Ack):
            acks += 1
    c = env.make()
    await c.connect(env.room_url(room).split("?")[0] + "?since=1")
    first = await _recv(c)
    if isinstance(first, P.Challenge):
        await c.send(auth(room, first.nonce, P.relay_name(env.room_url(room))))
    seen = []
    while True:
        m = await _recv(c)
        if isinstance(m, P.Frame):
            seen.append(m.cursor)
        if isinstance(m, P.CaughtUp):
            break
    assert seen == [2, 3], seen
    await a.close()
    await c.close()


MAILBOX_CHECKS = [check_mailbox_replay_with_since]


async def run_contract(env, names: list[str] | None = None) -> list[str]:
    """Run every check (or those named) against `env`; returns the names that passed."""
    passed = []
    checks = CHECKS + (MAILBOX_CHECKS if env.mailbox else [])
    for check in checks:
        if names is not None and check.__name__ not in names:
            continue
        try:
            await check(env)
        except BaseException as e:
            raise AssertionError(f"{env.name}: {check.__name__} (seed {SEED}): {type(e).__name__}: {e}") from e
        passed.append(check.__name__)
    return passed
