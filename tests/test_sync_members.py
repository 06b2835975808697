"""The sync client's member-log bookkeeping (sync/members.py): what a received member-log
payload costs and when a device publishes its log to the room."""

from __future__ import annotations

import pytest

from ostracon.core.encoding import encode
from ostracon.crypto import members as M
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.sync import members as SM
from ostracon.sync.members import MEMBERS_MAGIC, MemberSync
from test_members import CountingCrypto, crypto, forged_invites, ident

URL = "ws://127.0.0.1:1"


class Storage:
    def __init__(self) -> None:
        self.meta: dict[str, bytes] = {}
        self.writes = 0

    def get_meta(self, key: str) -> bytes | None:
        return self.meta.get(key)

    def set_meta(self, key: str, value: bytes) -> None:
        self.writes += 1
        self.meta[key] = value


class Db:
    def __init__(self) -> None:
        self.storage = Storage()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def payload(wires: list) -> bytes:
    return MEMBERS_MAGIC + encode(wires)


def admin_space(tag: str = "a", backend: NativeCrypto | None = None) -> tuple[Space, MemberSync, Clock]:
    space = Space.generate("team", identity=ident(tag), crypto=backend or crypto(f"{tag}-space"))
    for _ in range(5):
        space.invite(URL)
    clock = Clock()
    return space, MemberSync(Db(), space, clock=clock), clock


def test_junk_or_stale_payloads_never_make_a_device_republish():
    space, ms, _ = admin_space()
    assert ms.outgoing() is not None and ms.outgoing() is None
    older = space.members.export()[:3]
    for junk in (payload([]), payload(["x"]), MEMBERS_MAGIC + b"\xff", payload([[b"a", b"b"]]), payload(older)):
        ms.receive(junk)
        assert ms.outgoing() is None
    assert ms.room_has_log()


def test_a_log_received_again_is_nearly_free():
    cr = CountingCrypto()
    space, ms, _ = admin_space(backend=cr)
    flood = forged_invites(ident("r"), space, lambda k: [(k + 1).to_bytes(32, "big")], 1000)
    ms.receive(payload(space.members.export() + flood))
    before, writes = cr.verified, ms.db.storage.writes
    for _ in range(3):
        ms.receive(payload(space.members.export() + flood))
    assert cr.verified == before and ms.db.storage.writes == writes
    assert len(space.members.export()) <= len(space.members.entries) + M.MAX_WAITING_ENTRIES


def test_republishing_what_others_taught_is_rate_limited_but_local_changes_go_out_at_once():
    space, ms, clock = admin_space()
    ms.outgoing()
    reader = ident("r")
    sent = 0
    for k in range(10):  # each payload teaches one void entry and lacks the rest of our log
        void = forged_invites(reader, space, lambda _: space.members.heads(), k + 1)[k:]
        ms.receive(payload(void))
        sent += ms.outgoing() is not None
    assert sent == SM.REPUBLISH_BURST
    clock.t += SM.REPUBLISH_INTERVAL_S
    assert ms.outgoing() is not None and ms.outgoing() is None
    space.invite(URL)  # a local change is never held back
    assert ms.outgoing() is not None


def test_a_received_log_that_holds_ours_means_the_room_has_it():
    space, ms, _ = admin_space()
    other = Space.from_invite(space.invite(URL), identity=ident("b"), crypto=crypto("b-space"))
    other.members.merge(space.members.export())
    ms.receive(payload(other.members.export()))  # has all of ours and the join
    assert space.role(ident("b").actor) == "writer"
    assert ms.room_has_log() and ms.outgoing() is None


@pytest.mark.parametrize("n", [0, 1])
def test_a_new_room_gets_the_log_once(n):
    space, ms, _ = admin_space()
    ms.outgoing()
    ms.new_room()
    for _ in range(n):
        ms.receive(payload([]))
    assert ms.outgoing() is not None and ms.outgoing() is None
