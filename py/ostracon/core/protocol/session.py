"""The sync protocol as a sans-IO state machine (model: h11, wsproto). PURE.

Bytes in, events and bytes out: `SyncSession.receive_plaintext(data)` takes one decrypted
message and returns events; `outgoing()` returns the messages to send (the transport seals
each into one frame); `tick(now_ms)` drives retries and anti-entropy from an injected clock;
`on_local_change()` announces newly sealed local blocks. No I/O, no clock, no randomness of
its own (peer ids and request ids come from an injected `random_bytes`).

The medium is a relay ROOM: every message reaches every other member (broadcast), so
messages that concern one peer name it (`Need.to`, `Hello.reply_to`) and everyone else
either ignores them or profits from them (any `Blocks` is applied by every receiver).

Messages (canonical msgpack maps; docs/SYNC.md has the full flow):

    hello   {t, v, p: peer, a: actor, vv: [[actor, seq]...], d: digest, r: reply_to}
    need    {t, v, p: peer, to: peer | b"", q: request id, n: attempt, r: [[actor, from, to]...]}
    blocks  {t, v, p: peer, re: [[peer, q]...], last: bool, vv: [[actor, seq]...], e: [envelope...]}

Hostile input (from anyone holding the space key; the frame layer already dropped everything
else) never raises: malformed or out-of-limit messages become `ProtocolViolation` events, bad
blocks and seals are refused by the replica and reported in `BlocksApplied.rejected`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..block import MAX_BLOCK_BYTES
from ..errors import (
    MalformedMessageError,  # noqa: F401  (re-exported)
    ProtocolError,
    ValidationError,
)
from .events import (
    BlocksApplied,
    Diverged,
    Equivocated,
    Event,
    GapDetected,
    Outgoing,
    PeerLost,
    PeerSeen,
    ProtocolViolation,
    ReplicaLike,
    Synced,
)
from .frames import DEFAULT_MAX_FRAME_SIZE, FRAME_OVERHEAD
from .messages import (
    MAX_VECTOR_ENTRIES,
    PEER_ID_SIZE,
    Blocks,
    Hello,
    Need,
    checked_actor,
    checked_bytes,
    checked_seq,
    decode_message,
    encode_message,
)
from .peers import Outstanding, PeerState, digest_function, rendezvous_rank
from .serving import Serving

# --- limits (each is a SyncSession parameter; these are the defaults) -------------------------

#: Largest plaintext message: what fits in one default 512 KiB frame after the frame header,
#: encoding byte and GCM tag, so one message is always exactly one frame (one encryption).
DEFAULT_MAX_MESSAGE_BYTES = DEFAULT_MAX_FRAME_SIZE - FRAME_OVERHEAD
#: A message budget below this could not carry the largest legal block in one message.
MIN_MESSAGE_BYTES = MAX_BLOCK_BYTES + 4096
#: Peers remembered per session (least recently heard forgotten first): bounds the memory an
#: authenticated but hostile member can make us spend by inventing peer ids.
DEFAULT_MAX_PEERS = 1024
#: Version-vector entries remembered across all peers. A hello may carry 8192 entries; 50
#: invented peers each announcing that many cost 180 MB and half a second per tick. Beyond
#: this budget the least recently heard peers are forgotten first (a real peer says hello
#: again within a hello interval). 65,536 entries is ~10 MB and far above real rooms.
DEFAULT_MAX_TRACKED_ENTRIES = 65_536
#: Bytes of blocks this session sends in answer to needs, per second of the injected clock
#: (a token bucket refilled by tick, holding at most DEFAULT_SERVE_BURST_BYTES). A need for
#: everything costs one message to send and a whole store to answer; without a rate, 40 of
#: them made a member upload 363 MB. An answer cut short by the budget still ends with
#: last=True, so the asker sees the gap and asks again later.
DEFAULT_SERVE_BYTES_PER_S = 8 * 1024 * 1024
DEFAULT_SERVE_BURST_BYTES = 32 * 1024 * 1024
#: A need not answered completely within this long is sent again (to another peer if one has
#: the data). Long enough for a 512 KiB frame on a slow link, short enough to heal promptly.
DEFAULT_NEED_TIMEOUT_MS = 10_000
#: Anti-entropy: a hello is broadcast this often so that anything lost (dropped frames, a peer
#: that missed a push) is noticed even when nobody writes.
DEFAULT_HELLO_INTERVAL_MS = 30_000
#: A peer not heard from for this long is forgotten (3 missed hellos).
DEFAULT_PEER_TTL_MS = 3 * DEFAULT_HELLO_INTERVAL_MS
#: How many peers answer a newcomer's hello with their own (chosen by rendezvous hashing among
#: those that have something it lacks). Broadcast makes every reply reach every member, so
#: "everyone replies" would cost O(members^2) per join; 2 gives redundancy against one loss.
DEFAULT_REPLY_FANOUT = 2
#: Attempts for one gap before waiting for the next tick (a peer that claims data it cannot
#: serve must not make us loop).
MAX_NEED_ATTEMPTS = 3


class SyncSession(Serving):
    """One member's side of sync in one room, for one connection.

    `replica`: see ReplicaLike. `random_bytes(n)`: injected randomness (peer id, request ids).
    `actor`: our actor id (replica.actor by default), so our own blocks can be pushed durably.
    `pushed_upto`: our own seq already stored in the room's mailbox (persisted by the
    transport); start() pushes everything after it.
    """

    def __init__(self, replica: ReplicaLike, random_bytes: Callable[[int], bytes], *,
                 actor: bytes | None = None, peer_id: bytes | None = None, pushed_upto: int = 0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 need_timeout_ms: int = DEFAULT_NEED_TIMEOUT_MS,
                 hello_interval_ms: int = DEFAULT_HELLO_INTERVAL_MS,
                 peer_ttl_ms: int = DEFAULT_PEER_TTL_MS, max_peers: int = DEFAULT_MAX_PEERS,
                 reply_fanout: int = DEFAULT_REPLY_FANOUT, now_ms: int = 0,
                 max_tracked_entries: int = DEFAULT_MAX_TRACKED_ENTRIES,
                 serve_bytes_per_s: int = DEFAULT_SERVE_BYTES_PER_S,
                 serve_burst_bytes: int = DEFAULT_SERVE_BURST_BYTES) -> None:
        if type(max_message_bytes) is not int or max_message_bytes < MIN_MESSAGE_BYTES:
            raise ValidationError(f"max_message_bytes must be an int >= {MIN_MESSAGE_BYTES} "
                                  "(one message must be able to carry the largest block)")
        for name, value in (("need_timeout_ms", need_timeout_ms), ("hello_interval_ms", hello_interval_ms),
                            ("peer_ttl_ms", peer_ttl_ms), ("max_peers", max_peers),
                            ("reply_fanout", reply_fanout), ("max_tracked_entries", max_tracked_entries),
                            ("serve_bytes_per_s", serve_bytes_per_s), ("serve_burst_bytes", serve_burst_bytes)):
            if type(value) is not int or value < 1:
                raise ValidationError(f"{name} must be a positive int")
        self.replica = replica
        self._random = random_bytes
        self.actor = actor if actor is not None else getattr(replica, "actor", b"")
        checked_actor(self.actor, empty_ok=True)
        self.peer_id = checked_bytes(peer_id if peer_id is not None else random_bytes(PEER_ID_SIZE),
                              (PEER_ID_SIZE,), "peer id")
        self.pushed_upto = checked_seq(pushed_upto, "pushed_upto", 0)
        self.max_message_bytes = max_message_bytes
        self.need_timeout_ms = need_timeout_ms
        self.hello_interval_ms = hello_interval_ms
        self.peer_ttl_ms = peer_ttl_ms
        self.max_peers = max_peers
        self.reply_fanout = reply_fanout
        self.max_tracked_entries = max_tracked_entries
        self.serve_bytes_per_s = serve_bytes_per_s
        self.serve_burst_bytes = max(serve_burst_bytes, max_message_bytes)
        self._serve_budget = self.serve_burst_bytes
        self._tracked = 0                              # vector entries held across peers
        self._digest = digest_function(replica)
        self._now = now_ms
        self._last_hello = now_ms
        self._peers: dict[bytes, PeerState] = {}           # insertion order = least recently heard first
        self._outstanding: dict[bytes, Outstanding] = {}
        self._out: list[Outgoing] = []
        self._serve: dict[bytes, int] = {}             # actor -> lowest from_seq asked, this round
        self._serve_answers: list[tuple[bytes, int]] = []
        self._served: dict[bytes, int] = {}            # actor -> from_seq broadcast since last tick
        self._deferred: dict[bytes, Outstanding] = {}  # answered short while others were in flight
        self._failed: dict[bytes, bytes] = {}          # actor -> peer whose answer left a gap
        self._attempts: dict[bytes, int] = {}          # actor -> needs sent since the last tick
        self._diverged: set[bytes] = set()
        self._synced = False
        self._started = False
        self.stats = {"messages_in": 0, "messages_out": 0, "violations": 0, "blocks_new": 0,
                      "blocks_duplicate": 0, "blocks_rejected": 0, "gaps": 0, "echoes": 0}

    # ------------------------------------------------------------ public API

    def start(self) -> list[Event]:
        """Begin (call once the room is joined and any mailbox replay is done): push our own
        blocks the room's mailbox lacks, then say hello."""
        self._started = True
        self._push_own()
        self._queue_hello(b"")
        return self._check_synced([])

    def on_local_change(self) -> None:
        """New local blocks were sealed (after a flush): push them to the room."""
        if self._started:
            self._push_own()

    def resync(self) -> None:
        """Broadcast a hello now (after a reconnect, or when the caller suspects loss)."""
        self._queue_hello(b"")

    def receive_plaintext(self, data: bytes) -> list[Event]:
        """Process one decrypted message. Never raises for bad input: see ProtocolViolation."""
        events: list[Event] = []
        self.stats["messages_in"] += 1
        try:
            msg = decode_message(data)
        except MalformedMessageError as exc:
            self.stats["violations"] += 1
            events.append(ProtocolViolation(None, str(exc), exc))
            return events
        if msg.peer == self.peer_id:
            # Our own message reflected back (a relay replaying our frames): nothing to learn.
            self.stats["echoes"] += 1
            return events
        peer = self._touch(msg.peer, msg.actor if isinstance(msg, Hello) else b"", events)
        if isinstance(msg, Hello):
            self._on_hello(msg, peer, events)
        elif isinstance(msg, Need):
            self._on_need(msg, events)
        else:
            self._on_blocks(msg, peer, events)
        self._plan_needs(events)
        return self._check_synced(events)

    def outgoing(self) -> list[Outgoing]:
        """Messages to send, in order (each is one frame). Clears the queue."""
        self._flush_serves()
        out, self._out = self._out, []
        self.stats["messages_out"] += len(out)
        return out

    def tick(self, now_ms: int) -> list[Event]:
        """Advance the injected clock: retry timed-out needs, forget silent peers, and send the
        periodic hello."""
        events: list[Event] = []
        if type(now_ms) is not int:
            raise ValidationError("now_ms must be an int")
        elapsed = max(0, now_ms - self._now)
        self._now = max(self._now, now_ms)
        self._serve_budget = min(self.serve_burst_bytes,
                                 self._serve_budget + elapsed * self.serve_bytes_per_s // 1000)
        self._served.clear()
        for pid in [p for p, info in self._peers.items() if self._now - info.last_seen >= self.peer_ttl_ms]:
            self._forget(pid)
            events.append(PeerLost(pid))
        ours = self.replica.version_vector()
        for actor, o in list(self._outstanding.items()):
            if self._now - o.sent_ms >= self.need_timeout_ms:
                have = ours.get(actor, 0)
                del self._outstanding[actor]
                if have < o.upto:
                    self.stats["gaps"] += 1
                    events.append(GapDetected(actor, have, o.upto))
                    self._failed[actor] = o.peer
        if self._started and self._now - self._last_hello >= self.hello_interval_ms:
            self._queue_hello(b"")
        self._attempts.clear()
        self._plan_needs(events)
        return self._check_synced(events)

    @property
    def is_synced(self) -> bool:
        """No need outstanding and no known peer announced anything we lack."""
        if self._outstanding or self._deferred:
            return False
        ours = self.replica.version_vector()
        for p in self._peers.values():
            for actor, seq in p.vector.items():
                if ours.get(actor, 0) < seq:
                    return False
        return True

    @property
    def tracked_entries(self) -> int:
        """Version-vector entries held across known peers (bounded by max_tracked_entries)."""
        return self._tracked

    @property
    def peers(self) -> dict[bytes, bytes]:
        """peer id -> actor (b"" when unknown) of every peer currently known."""
        return {p.peer: p.actor for p in self._peers.values()}

    # ------------------------------------------------------------ internals: peers

    def _touch(self, pid: bytes, actor: bytes, events: list[Event]) -> PeerState:
        p = self._peers.pop(pid, None)
        if p is None:
            p = PeerState(pid, self._now)
            p.actor = actor
            events.append(PeerSeen(pid, actor))
            while len(self._peers) >= self.max_peers:
                oldest = next(iter(self._peers))
                self._forget(oldest)
                events.append(PeerLost(oldest))
        p.last_seen = self._now
        self._peers[pid] = p  # re-insert: most recently heard last
        return p

    def _forget(self, pid: bytes) -> None:
        p = self._peers.pop(pid, None)
        if p is not None:
            self._tracked -= len(p.vector)

    def _make_room(self, p: PeerState, entries: int, events: list[Event]) -> int:
        """Forget least recently heard peers until `entries` more vector entries fit;
        returns how many fit (a vector beyond the whole budget is cut)."""
        while self._tracked + entries > self.max_tracked_entries:
            oldest = next((q for q in self._peers if q != p.peer), None)
            if oldest is None:
                break
            self._forget(oldest)
            events.append(PeerLost(oldest))
        return max(0, min(entries, self.max_tracked_entries - self._tracked))

    def _learn(self, p: PeerState, vector: tuple[tuple[bytes, int], ...], events: list[Event]) -> None:
        vec = p.vector
        vector = tuple(self._admissible(vector))
        new = [(a, s) for a, s in vector if a not in vec]
        room = self._make_room(p, len(new), events) if new else 0
        for actor, seq in vector:
            if actor in vec:
                if vec[actor] < seq:
                    vec[actor] = seq
            elif room > 0:
                vec[actor] = seq
                room -= 1
                self._tracked += 1

    def _admissible(self, vector: Any) -> list[tuple[bytes, int]]:
        """A peer's claimed vector, clamped to what the space's membership lets each actor
        write (replica.write_limit: None = no limit). Blocks beyond it are refused on apply,
        so asking for them would never end and the session would never be synced."""
        limit = getattr(self.replica, "write_limit", None)
        items = vector.items() if isinstance(vector, dict) else vector
        if limit is None:
            return list(items)
        out = []
        for actor, seq in items:
            cap = limit(actor)
            if cap is not None:
                seq = min(seq, cap)
            if seq > 0:
                out.append((actor, seq))
        return out

    # ------------------------------------------------------------ internals: hello

    def _queue_hello(self, reply_to: bytes) -> None:
        vv = self.replica.version_vector()
        if len(vv) > MAX_VECTOR_ENTRIES:
            raise ProtocolError(f"more than {MAX_VECTOR_ENTRIES} actors: beyond this protocol's limits")
        digest = self._digest(vv) if self._digest is not None else b""
        msg = Hello(self.peer_id, tuple(sorted(vv.items())), digest, self.actor, reply_to)
        self._out.append(Outgoing(encode_message(msg), False, "hello"))
        if not reply_to:
            self._last_hello = self._now

    def _on_hello(self, msg: Hello, p: PeerState, events: list[Event]) -> None:
        if msg.actor and not p.actor:
            p.actor = msg.actor
            events.append(PeerSeen(p.peer, msg.actor))
        # A hello states the peer's whole vector: replace (it may have lost data, e.g. a fresh
        # in-memory replica reusing a peer id is impossible, but a restarted one is a new peer).
        self._tracked -= len(p.vector)
        p.vector = {}
        self._learn(p, msg.version_vector, events)
        p.digest = msg.heads_digest
        ours = self.replica.version_vector()
        if msg.heads_digest and p.vector == ours and self._digest is not None and p.peer not in self._diverged:
            if self._digest(ours) != msg.heads_digest:
                self._diverged.add(p.peer)
                events.append(Diverged(p.peer))
                # Send each actor's tip block and the seal covering it (small: one block and
                # seal per actor): the peer whose tip differs holds a conflicting seal and can
                # prove the equivocation, which quarantines the actor everywhere.
                tips = {a: s - 1 for a, s in ours.items()}
                self._emit_blocks(self.replica.envelopes_since(tips), (), (), durable=False, kind="tips")
        if msg.reply_to or not self._started:
            return
        if self._should_reply(p, ours):
            self._queue_hello(p.peer)

    def _should_reply(self, newcomer: PeerState, ours: dict[bytes, int]) -> bool:
        theirs = newcomer.vector
        lacks = [a for a, s in ours.items() if s > theirs.get(a, 0)]
        if not lacks:
            return False
        candidates = [self.peer_id]
        for q in self._peers.values():
            if q.peer != newcomer.peer and any(q.vector.get(a, 0) > theirs.get(a, 0) for a in lacks):
                candidates.append(q.peer)
        if len(candidates) <= self.reply_fanout:
            return True
        candidates.sort(key=lambda c: rendezvous_rank(newcomer.peer, c))
        return self.peer_id in candidates[: self.reply_fanout]

    # ------------------------------------------------------------ internals: needs

    def _new_request_id(self) -> int:
        while True:
            q = int.from_bytes(self._random(4), "big")
            if q:
                return q

    def _pick_source(self, actor: bytes, want: int, avoid: bytes | None) -> bytes | None:
        """The peer to ask: the actor's own device if it has `want`, else the rendezvous-first
        peer that has it (every member picks the same one, so its answer serves them all)."""
        best: list[PeerState] = [p for p in self._peers.values() if p.vector.get(actor, 0) >= want]
        if not best:
            return None
        alt = [p for p in best if p.peer != avoid]
        if alt:
            best = alt
        for p in best:
            if p.actor == actor:
                return p.peer
        return min(best, key=lambda p: rendezvous_rank(actor, p.peer)).peer

    def _plan_needs(self, events: list[Event]) -> None:
        if not self._started:
            return
        ours = self.replica.version_vector()
        # Drop outstanding needs that are satisfied.
        for actor in [a for a, o in self._outstanding.items() if ours.get(a, 0) >= o.upto]:
            del self._outstanding[actor]
        if self._deferred and not self._outstanding:
            deferred, self._deferred = self._deferred, {}
            for actor, answered in deferred.items():
                have = ours.get(actor, 0)
                if have < answered.upto:
                    self._gap_after_answer(actor, have, answered, events)
        wanted: dict[bytes, int] = {}
        for p in self._peers.values():
            for actor, seq in p.vector.items():
                if seq > wanted.get(actor, 0):
                    wanted[actor] = seq
        by_target: dict[bytes, list[tuple[bytes, int, int]]] = {}
        attempts: dict[bytes, int] = {}
        for actor, want in wanted.items():
            have = ours.get(actor, 0)
            if have >= want:
                continue
            if actor in self._deferred:
                continue
            o = self._outstanding.get(actor)
            if o is not None and o.upto >= want:
                continue
            start = max(have, o.upto if o is not None else 0) + 1
            n = self._attempts.get(actor, 0) + 1
            if n > MAX_NEED_ATTEMPTS:
                continue  # wait for the next tick: a peer claims more than it serves
            self._attempts[actor] = n
            avoid = self._failed.pop(actor, None)
            target = self._pick_source(actor, want, avoid)
            if target is None:
                continue
            if avoid is not None and target == avoid:
                target = b""  # the only holder failed us: ask everyone
            by_target.setdefault(target, []).append((actor, start, want))
            attempts[actor] = n if avoid is None else max(n, 2)
        for target, ranges in by_target.items():
            ranges.sort()
            for i in range(0, len(ranges), MAX_VECTOR_ENTRIES):
                chunk = ranges[i:i + MAX_VECTOR_ENTRIES]
                q = self._new_request_id()
                attempt = max(attempts[a] for a, _, _ in chunk)
                self._out.append(Outgoing(encode_message(Need(self.peer_id, tuple(chunk), q, target, attempt)),
                                          False, "need"))
                for actor, _, want in chunk:
                    self._outstanding[actor] = Outstanding(want, q, target, self._now, attempt)

    def _on_blocks(self, msg: Blocks, p: PeerState, events: list[Event]) -> None:
        self._learn(p, msg.version_vector, events)
        if msg.envelopes:
            try:
                result = self.replica.apply_envelopes(list(msg.envelopes), strict=False)
            except Exception as exc:  # a replica must not raise with strict=False; never crash sync
                self.stats["violations"] += 1
                err = ProtocolError(f"replica refused a blocks message: {exc.__class__.__name__}: {exc}")
                events.append(ProtocolViolation(p.peer, str(err), err))
                return
            rejected = tuple(str(r[1]) if isinstance(r, tuple) else str(r) for r in result.rejected)
            self.stats["blocks_new"] += result.new
            self.stats["blocks_duplicate"] += result.duplicates
            self.stats["blocks_rejected"] += len(rejected)
            events.append(BlocksApplied(p.peer, result.new, result.duplicates, result.pending, rejected))
            for ev in getattr(result, "equivocations", ()):
                events.append(Equivocated(p.peer, ev.actor, ev.seq, ev.cids, ev.seals))
                # Broadcast the proof and both branches once: a replica that saw only one
                # side (or neither) converges without asking (see Replica.proof_envelopes).
                vector = dict(self.replica.version_vector())
                vector[ev.actor] = ev.seq - 1
                self._emit_blocks(self.replica.envelopes_since(vector), (), (), durable=False, kind="proof")
        if not msg.last:
            return
        # The final part of an answer: whatever the need asked for and still lacks is a gap.
        ours = self.replica.version_vector()
        mine = {q for pid, q in msg.answers if pid == self.peer_id}
        if not mine:
            return
        done = [(a, o) for a, o in self._outstanding.items() if o.request in mine]
        for actor, _ in done:
            del self._outstanding[actor]
        for actor, o in done:
            have = ours.get(actor, 0)
            if have < o.upto:
                self._gap_after_answer(actor, have, o, events)

    def _gap_after_answer(self, actor: bytes, have: int, o: Outstanding, events: list[Event]) -> None:
        # The blocks may have arrived but wait in the replica for parents of another actor
        # that are still on their way (a document's parents can be anyone's). Judge only once
        # nothing else is outstanding; until then the actor counts as in flight.
        if self._outstanding:
            self._deferred[actor] = o
            return
        self.stats["gaps"] += 1
        events.append(GapDetected(actor, have, o.upto))
        self._failed[actor] = o.peer

    # ------------------------------------------------------------ internals: synced

    def _check_synced(self, events: list[Event]) -> list[Event]:
        synced = self._started and self.is_synced
        if synced and not self._synced:
            vv = self.replica.version_vector()
            events.append(Synced(tuple(sorted(vv.items())), len(self._peers)))
        self._synced = synced
        return events
