"""What the relay sees: everything it receives, sends, stores and logs during a realistic sync.

The relay runs in-process with an SQLite mailbox; its WebSocket connection class is swapped
for a recording subclass (monkeypatch of the name `ServerConnection` that `Relay.start` uses),
so every message the relay reads or writes after WebSocket decoding is kept with its time and
connection. Devices write distinctive strings as collection names, document ids, field names
and values (plus their actor ids, the space name, key and passphrase); none of them may appear
in any recorded byte, in the mailbox file, in the relay's logs or in its metrics.

`RELAY_SEES` lists exactly what the relay can observe. The second test keeps that list honest
against the code: the mailbox's SQLite columns, the cleartext frame header, the client→relay
message kinds, the join URL's parameters and the relay's per-connection, per-room and metrics
state. Adding a column, a header field, a message kind or a piece of relay state fails the
test until the list (and docs/CRYPTO.md "What the relay sees") are updated.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
import zlib
from dataclasses import fields
from urllib.parse import parse_qs, urlsplit

import pytest

import ostracon
from ostracon.core.protocol import frames as F
from ostracon.core.protocol import relay as P
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.relay import server as relay_server
from ostracon.relay.mailbox import FRAME_OVERHEAD_BYTES, SqliteMailbox
from ostracon.relay.server import Relay, RelayConfig, RelayMetrics
from ostracon.sync.native import start_sync

CRYPTO = NativeCrypto()
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.3, tick_interval_s=0.02, settle_s=0.2)
TIMEOUT = 20.0

# Distinctive strings: each is unlikely to occur by chance in random bytes or relay metadata.
COLLECTION = "zqmarmosetledger"
DOC_IDS = ["zq-okapi-document-1", "zq-okapi-document-2", "zq-okapi-document-3"]
FIELD = "zqnarwhalfield"
NESTED_FIELD = "zqpangolinnested"
VALUE = "zq-quetzal-value-7731"
LIST_VALUE = "zq-tardigrade-listed"
BIG_VALUE = "zq-axolotl-repeats " * 4000  # highly compressible: a plaintext leak would show
SPACE_NAME = "zq-space-name-lemur"
PASSPHRASE = "zq passphrase of the capybara"

# ------------------------------------------------------------------ what the relay can see

RELAY_SEES = {
    # Per connection (the WebSocket handshake and the socket).
    "connection": {"room_id", "since", "epoch", "remote_address", "request_headers", "opened_at", "closed_at",
                   "close_code"},
    # Per client message: which connection sent it, when, how big, and its one-byte kind.
    "client_message": {"connection", "time", "size", "kind"},
    # The cleartext header of every frame (core/protocol/frames.py); the rest is AES-GCM ciphertext.
    "frame_header": {"version", "room", "sender", "counter", "length", "nonce", "commitment"},
    # What the mailbox stores (SQLite tables `frames`, `rooms`, `meta`).
    "mailbox_frames": {"room", "cursor", "ts", "size", "data", "writer"},  # writer: client key
    "mailbox_rooms": {"room", "epoch", "head", "pruned_through", "last_ts", "last_active"},
    "mailbox_meta": {"k", "v"},
    # Which client→relay message kinds exist (core/protocol/relay.py C_*). A ping carries only
    # a random token of at most 8 bytes and is answered to its sender alone.
    "client_kinds": {"C_PUBLISH", "C_EPHEMERAL", "C_AUTH", "C_PING"},
    # Query parameters of the join URL /v1/room/<room_id>?since=&epoch=.
    "join_params": {"since", "epoch"},
    # State the relay keeps per member, per room, and in aggregate.
    # `key` is the client address (IPv6: its /64) the limits are charged to.
    "member_state": {"ws", "room", "key", "queue", "queue_bytes", "controls", "wakeup", "replaying", "closing",
                     "sent", "queued", "gap_through", "sender", "close_reason"},
    "room_state": {"id", "members", "peers_pending", "live_head"},
    "metrics": {"connections_total", "frames_in", "bytes_in", "frames_out", "control_out", "bytes_out",
                "stored_frames", "http_requests", "throttled_s", "queued_bytes", "queue_high_water_bytes",
                "drops"},
}


# ------------------------------------------------------------------ recording

class Recorder:
    def __init__(self) -> None:
        self.conns: list = []
        self.inbound: list[tuple[int, float, bytes]] = []   # (connection index, time, message)
        self.outbound: list[tuple[int, float, bytes]] = []


def recording_connection_class(rec: Recorder):
    base = relay_server.ServerConnection

    class RecordingConnection(base):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.rec_index = len(rec.conns)
            rec.conns.append(self)

        async def recv(self, *a, **kw):
            msg = await super().recv(*a, **kw)
            rec.inbound.append((self.rec_index, time.monotonic(), bytes(msg) if not isinstance(msg, str)
                                else msg.encode()))
            return msg

        async def send(self, message, *a, **kw):
            rec.outbound.append((self.rec_index, time.monotonic(), bytes(message) if not isinstance(message, str)
                                 else message.encode()))
            return await super().send(message, *a, **kw)

    return RecordingConnection


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(relay_server, "ServerConnection", recording_connection_class(rec))
    return rec


def _space() -> Space:
    return Space.from_passphrase(PASSPHRASE, SPACE_NAME, iterations=1000, crypto=CRYPTO, _insecure_for_tests=True)


def _db(i: int):
    ident = Identity.from_seed(DeterministicRandom(f"visibility-identity-{i}")(32), crypto=CRYPTO)
    return ostracon.open(identity=ident, crypto=CRYPTO, random_bytes=DeterministicRandom(f"visibility-{i}"))


def _write_secrets(db, i: int) -> None:
    col = db.collection(COLLECTION)
    doc_id = DOC_IDS[i]
    col.create({FIELD: VALUE, NESTED_FIELD: {FIELD: [LIST_VALUE, i]}, "n": i}, id=doc_id)
    col.patch(doc_id, {FIELD: VALUE + f"-{i}"})
    col.increment(doc_id, "n", 5)
    if i == 0:
        col.create({FIELD: BIG_VALUE}, id=DOC_IDS[0] + "-big")
    db.flush()


async def _converged(*dbs) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + TIMEOUT
    while len({(db.state_hash(), tuple(db.heads())) for db in dbs}) != 1:
        assert loop.time() < end, "no convergence"
        await asyncio.sleep(0.02)


async def _realistic_sync(tmp_path, rec: Recorder):
    """Offline writes pushed on join, live edits, a restart of one device (new connection),
    and a late device that replays everything from the mailbox. Returns what the test needs."""
    space = _space()
    mailbox_path = tmp_path / "mailbox.sqlite"
    mailbox = SqliteMailbox(mailbox_path)
    dbs = [_db(i) for i in range(3)]
    async with Relay(RelayConfig(), mailbox, port=0) as relay:
        _write_secrets(dbs[0], 0)
        handles = [await start_sync(db, relay.url, space, **FAST) for db in dbs[:2]]
        for h in handles:
            await h.wait_synced(TIMEOUT)
        _write_secrets(dbs[1], 1)  # live
        handles[1].notify_local_change()
        await _converged(*dbs[:2])
        await handles[0].stop()
        dbs[0].collection(COLLECTION).patch(DOC_IDS[0], {FIELD: VALUE + "-offline"})
        dbs[0].flush()
        handles[0] = await start_sync(dbs[0], relay.url, space, **FAST)  # a second connection
        await handles[0].wait_synced(TIMEOUT)
        await _converged(*dbs[:2])
        for h in handles:
            await h.stop()
        _write_secrets(dbs[2], 2)  # the late device has news too
        h2 = await start_sync(dbs[2], relay.url, space, **FAST)
        await h2.wait_synced(TIMEOUT)
        await h2.stop()
        handles = [await start_sync(db, relay.url, space, **FAST) for db in dbs[:2]]
        for h in handles:
            await h.wait_synced(TIMEOUT)
        await _converged(*dbs)
        for h in handles:
            await h.stop()
        metrics_text = relay.prometheus_text() + repr(relay.metrics_snapshot())
        relay_state = repr(relay.metrics) + repr(relay._rooms) + repr(relay._members)
    mailbox.close()
    return space, dbs, mailbox_path, metrics_text, relay_state


def _needles(space: Space, dbs) -> dict[str, bytes]:
    out = {}
    for s in [COLLECTION, *DOC_IDS, FIELD, NESTED_FIELD, VALUE, LIST_VALUE, BIG_VALUE[:40], SPACE_NAME, PASSPHRASE]:
        out[s] = s.encode()
    for i, db in enumerate(dbs):
        actor = bytes.fromhex(db.actor)
        out[f"actor {i}"] = actor
        out[f"actor {i} hex"] = db.actor.encode()
    out["space key"] = space.export_key()
    out["frame key"] = space.frame_key
    out["commit key"] = space.commit_key
    return out


def _files_bytes(path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        p = path.parent / (path.name + suffix)
        if p.exists():
            data += p.read_bytes()
    return data


def test_no_name_id_field_or_value_reaches_the_relay(tmp_path, recorder, caplog):
    caplog.set_level(logging.DEBUG)
    space, dbs, mailbox_path, metrics_text, relay_state = asyncio.run(_realistic_sync(tmp_path, recorder))
    needles = _needles(space, dbs)

    # Positive controls: the needles are in the synced data, so plaintext frames would show
    # them; the recorder saw real traffic; and visible things (the room id) are found.
    envelopes = b"".join(dbs[2].blocks_since())
    for name in [COLLECTION, *DOC_IDS, FIELD, NESTED_FIELD, VALUE, LIST_VALUE, "actor 0", "actor 1", "actor 2"]:
        assert needles[name] in envelopes, name
    kinds_in = [m[0] for _, _, m in recorder.inbound]
    assert kinds_in.count(P.C_PUBLISH) >= 4 and kinds_in.count(P.C_EPHEMERAL) >= 2
    assert len(recorder.conns) >= 6 and len(recorder.outbound) > len(recorder.inbound)
    room = space.room_id_bytes
    # Frames carry the first 16 bytes of the room id (the room public key) in their header.
    assert any(space.frame_keys().room in m for _, _, m in recorder.inbound)
    assert all(space.room_id in c.request.path for c in recorder.conns)

    stored = _files_bytes(mailbox_path)
    assert room.hex().encode() in stored  # the room id is visible in the mailbox, by design
    relay_logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ostracon.relay"))
    haystacks = {
        "messages received": [m for _, _, m in recorder.inbound],
        "messages sent": [m for _, _, m in recorder.outbound],
        "join requests": [(c.request.path + repr(list(c.request.headers.raw_items()))).encode()
                          for c in recorder.conns],
        "mailbox file": [stored],
        "relay logs": [relay_logs.encode()],
        "metrics and state": [metrics_text.encode(), relay_state.encode()],
    }
    for where, blobs in haystacks.items():
        for name, needle in needles.items():
            for blob in blobs:
                assert needle not in blob, f"{name!r} visible to the relay in {where}"
                if len(needle) >= 16 and needle.isascii():
                    assert needle.lower() not in blob.lower(), f"{name!r} (case-folded) in {where}"
    # Logs shorten room ids to 8 hex digits.
    assert space.room_id not in relay_logs

    # Every frame body is ciphertext: nothing of it compresses (the 76 KB repetitive value
    # would shrink ~100× if it travelled in clear), and nonces never repeat.
    nonces = set()
    frames_seen = 0
    frames_in = [m for _, _, m in recorder.inbound if m[0] != P.C_AUTH]
    for msg in frames_in:
        frame = msg[1:]
        header = F.parse_header(frame, max_frame_size=RelayConfig().max_frame_bytes)
        body = frame[F.HEADER_SIZE:]
        assert len(zlib.compress(body, 9)) >= len(body)
        assert header.nonce not in nonces
        nonces.add(header.nonce)
        frames_seen += 1
    assert frames_seen == len(frames_in)
    assert max(len(m) for _, _, m in recorder.inbound) > len(BIG_VALUE) // 2  # the big value did travel


def test_relay_sees_exactly_the_listed_metadata(tmp_path, recorder):
    space, dbs, mailbox_path, _, _ = asyncio.run(_realistic_sync(tmp_path, recorder))
    room = space.room_id_bytes
    actors = {bytes.fromhex(db.actor) for db in dbs}

    # 1. The mailbox stores exactly the listed columns.
    con = sqlite3.connect(str(mailbox_path))
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"frames", "rooms", "meta"}
        for table in ("frames", "rooms", "meta"):
            cols = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            assert cols == RELAY_SEES[f"mailbox_{table}"], table
        rows = con.execute("SELECT room, cursor, ts, size, data FROM frames ORDER BY cursor").fetchall()
        meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
    finally:
        con.close()
    assert rows and {r[0] for r in rows} == {space.room_id}
    assert [r[1] for r in rows] == list(range(rows[0][1], rows[0][1] + len(rows)))
    assert all(r[3] == len(r[4]) + FRAME_OVERHEAD_BYTES for r in rows)  # size as accounted
    assert set(meta) == {"schema"}
    # Stored data is the frame as the client sent it (opaque), nothing added by the relay.
    published = [m[1:] for _, _, m in recorder.inbound if m[0] == P.C_PUBLISH]
    assert [bytes(r[4]) for r in rows] == published

    # 2. The cleartext frame header has exactly the listed fields, 73 bytes in all.
    assert {f.name for f in fields(F.FrameHeader)} | {"version"} == RELAY_SEES["frame_header"]
    assert F.HEADER_SIZE == 1 + F.ROOM_ID_SIZE + F.SENDER_ID_SIZE + 8 + 4 + F.NONCE_SIZE + F.COMMITMENT_SIZE
    senders_by_conn: dict[int, set[bytes]] = {}
    counters: dict[bytes, list[int]] = {}
    commitments = set()
    for conn, _, msg in recorder.inbound:
        if msg[0] == P.C_AUTH:
            continue  # the admission answer: a signature by the room key (docs/RELAY.md)
        h = F.parse_header(msg[1:], max_frame_size=RelayConfig().max_frame_bytes)
        assert h.room == room[:F.ROOM_ID_SIZE]
        assert h.sender not in actors and h.commitment not in actors
        senders_by_conn.setdefault(conn, set()).add(h.sender)
        counters.setdefault(h.sender, []).append(h.counter)
        commitments.add(h.commitment)
    # The sender id is per connection (random), so it does not link a device's connections;
    # counters run 0, 1, 2, ... per sender; the commitment is one constant per space.
    assert all(len(s) == 1 for s in senders_by_conn.values())
    assert len({next(iter(s)) for s in senders_by_conn.values()}) == len(senders_by_conn)
    assert all(c == list(range(len(c))) for c in counters.values())
    assert len(commitments) == 1

    # 3. A client can only say "publish" or "ephemeral" (kind byte + opaque payload), and answer
    #    the admission challenge once (a signature).
    kinds = {n for n in vars(P) if re.fullmatch(r"C_[A-Z]+", n)}
    assert kinds == RELAY_SEES["client_kinds"]
    assert {m[0] for _, _, m in recorder.inbound} <= {getattr(P, k) for k in kinds}

    # 4. The join URL carries the room id and at most since/epoch.
    for c in recorder.conns:
        parts = urlsplit(c.request.path)
        assert parts.path == P.ROOM_PATH_PREFIX + space.room_id
        assert set(parse_qs(parts.query)) <= RELAY_SEES["join_params"]
    assert any("epoch=" in c.request.path for c in recorder.conns)  # resumed joins carry it

    # 5. The relay's own state per member, per room and in aggregate: nothing else is kept.
    assert set(relay_server._Member.__slots__) - {"__weakref__"} == RELAY_SEES["member_state"]
    assert set(relay_server._Room.__slots__) == RELAY_SEES["room_state"]
    assert {f.name for f in fields(RelayMetrics)} == RELAY_SEES["metrics"]

    # 6. Per message the relay knows the connection, the time, the size and the kind, which
    #    is what the recorder captured; and per connection the address and the close code.
    assert all(isinstance(t, float) and size > F.HEADER_SIZE for _, t, size in
               ((c, t, len(m)) for c, t, m in recorder.inbound if m[0] != P.C_AUTH))
    assert all(c.remote_address[0] == "127.0.0.1" and c.close_code is not None for c in recorder.conns)
