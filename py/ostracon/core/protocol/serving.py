"""Serving in a sync session: answering needs and pushing our own blocks, as `Blocks`
messages under the message budget and the serve rate. A mixin of
core.protocol.session.SyncSession (its state and limits live in SyncSession.__init__). PURE.

Answers to every need that reached us since the last `outgoing()` are merged into one
broadcast (each asker's request id is listed in `re`), from the lowest sequence number any of
them asked for; a range broadcast since the last tick is not sent again for a first attempt.
What the serve budget (a token bucket refilled by `tick`) does not allow is left out: the
answer still ends with last=True, so the asker sees the gap and asks again later.
"""

from __future__ import annotations

from typing import Any

from .events import Event, Outgoing, ReplicaLike
from .messages import MAX_ENVELOPES_PER_MESSAGE, MAX_VECTOR_ENTRIES, Blocks, Need, encode_message
from .peers import sealed_through


class Serving:
    """Need answers and own-block pushes of `SyncSession`."""

    replica: ReplicaLike
    peer_id: bytes
    actor: bytes
    pushed_upto: int
    max_message_bytes: int
    stats: dict[str, Any]
    _out: list[Outgoing]
    _serve: dict[bytes, int]
    _serve_answers: list[tuple[bytes, int]]
    _served: dict[bytes, int]
    _serve_budget: int

    def _on_need(self, msg: Need, events: list[Event]) -> None:
        if msg.to and msg.to != self.peer_id:
            return
        ours = self.replica.version_vector()
        for actor, first, _last in msg.ranges:
            if ours.get(actor, 0) < first:
                continue  # we do not have it: the asker learns that from the empty answer
            served = self._served.get(actor)
            if msg.attempt == 1 and served is not None and served <= first:
                # Already broadcast since the last tick: the asker's need crossed our answer,
                # which the relay delivers before this one. A retry (attempt > 1) is served.
                continue
            cur = self._serve.get(actor)
            self._serve[actor] = first if cur is None else min(cur, first)
        self._serve_answers.append((msg.peer, msg.request))

    def _flush_serves(self) -> None:
        if not self._serve_answers:
            return
        answers = self._serve_answers[:MAX_VECTOR_ENTRIES]
        self._serve_answers = self._serve_answers[MAX_VECTOR_ENTRIES:]
        serve, self._serve = self._serve, {}
        ours = self.replica.version_vector()
        envelopes: list[bytes] = []
        vv: tuple[tuple[bytes, int], ...] = ()
        if serve:
            vector = dict(ours)
            for actor, first in serve.items():
                vector[actor] = first - 1
                prev = self._served.get(actor)
                self._served[actor] = first if prev is None else min(prev, first)
            envelopes = self.replica.envelopes_since(vector)
            vv = tuple(sorted((a, ours[a]) for a in serve if a in ours))
            # Rate bound (DEFAULT_SERVE_BYTES_PER_S): send what the budget allows; the rest
            # is a gap the asker notices (last=True) and asks for again later.
            size, cut = 0, len(envelopes)
            for k, env in enumerate(envelopes):
                size += len(env)
                if size > self._serve_budget:
                    cut = k
                    break
            if cut < len(envelopes):
                self.stats["serve_throttled"] = self.stats.get("serve_throttled", 0) + 1
                envelopes = envelopes[:cut]
            self._serve_budget -= sum(len(e) for e in envelopes)
        self._emit_blocks(envelopes, vv, tuple(answers), durable=False, kind="blocks")
        if self._serve_answers:
            self._flush_serves()

    def _push_own(self) -> None:
        if not self.actor:
            return
        ours = self.replica.version_vector()
        upto = ours.get(self.actor, 0)
        if upto <= self.pushed_upto:
            return
        vector = dict(ours)
        vector[self.actor] = self.pushed_upto
        envelopes = self.replica.envelopes_since(vector)
        self._emit_blocks(envelopes, ((self.actor, upto),), (), durable=True, kind="push", own_upto=upto)
        self.pushed_upto = upto

    def _emit_blocks(self, envelopes: list[bytes], vv: tuple, answers: tuple, *, durable: bool,
                     kind: str, own_upto: int = 0) -> None:
        """Split envelopes into messages under the byte budget; the last one has last=True."""
        base = len(encode_message(Blocks(self.peer_id, (), vv, answers, True)))
        budget = self.max_message_bytes - base - 8  # the array header of "e" grows up to 5 bytes
        parts: list[list[bytes]] = []
        cur: list[bytes] = []
        size = 0
        for env in envelopes:
            n = len(env) + 5  # bin header is at most 5 bytes
            if cur and (size + n > budget or len(cur) >= MAX_ENVELOPES_PER_MESSAGE):
                parts.append(cur)
                cur, size = [], 0
            cur.append(env)
            size += n
        parts.append(cur)
        covered = 0
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            data = encode_message(Blocks(self.peer_id, tuple(part), vv, answers, last))
            # Progress per part, so an interrupted push resumes instead of restarting: the end
            # of the last own seal range sent so far (every block of it precedes its seal).
            if own_upto and not last:
                covered = max(covered, sealed_through(part, self.actor, own_upto))
            self._out.append(Outgoing(data, durable, kind, own_upto if last else covered))
