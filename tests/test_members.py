"""Member log (crypto/members.py) and member spaces (crypto/space.py): entries, roles, invites,
removal with rotation, the merge rule for concurrent admin actions, write limits, wrapping."""

from __future__ import annotations

import os
import random

import pytest

from ostracon.core.block import KIND_BLOCK, Change, envelope
from ostracon.core.errors import MalformedMessageError, MemberLogFullError, ValidationError
from ostracon.crypto import DeterministicRandom
from ostracon.crypto import members as M
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto
from ostracon.crypto.space import Space
from ostracon.sync.base import filter_writable

SEED = int(os.environ.get("OSTRACON_MEMBERS_SEED", "7"))
URL = "ws://127.0.0.1:1"


def crypto(tag: str) -> NativeCrypto:
    return NativeCrypto(random_bytes=DeterministicRandom(f"{SEED}/{tag}"))


def ident(tag: str) -> Identity:
    return Identity.generate(crypto(tag))


def exchange(*spaces: Space) -> None:
    """Every space's log reaches every other (as the room would carry it)."""
    for _ in range(2):
        for a in spaces:
            for b in spaces:
                if a is not b:
                    b.members.merge(a.members.export())
    for s in spaces:
        s.refresh()


def team():
    a, b, c = ident("a"), ident("b"), ident("c")
    admin = Space.generate("team", identity=a, crypto=crypto("space"))
    sb = Space.from_invite(admin.invite(URL), identity=b, crypto=crypto("b-space"))
    sc = Space.from_invite(admin.invite(URL, role="reader"), identity=c, crypto=crypto("c-space"))
    exchange(admin, sb, sc)
    return (a, admin), (b, sb), (c, sc)


def test_create_invite_join_roles():
    (a, admin), (b, sb), (c, sc) = team()
    assert admin.role(a.actor) == "admin" and admin.role(b.actor) == "writer" and admin.role(c.actor) == "reader"
    assert sb.role() == "writer" and sc.role() == "reader"
    assert admin.room_id == sb.room_id == sc.room_id
    assert admin.space_id == admin.members.order()[0][:16]  # the create entry names the space
    assert admin.write_limit(b.actor) is None and admin.write_limit(c.actor) == 0


def test_invite_is_single_use():
    (a, admin), _, _ = team()
    inv = admin.invite(URL)
    d1, d2 = ident("d1"), ident("d2")
    s1 = Space.from_invite(inv, identity=d1, crypto=crypto("d1s"))
    s2 = Space.from_invite(inv, identity=d2, crypto=crypto("d2s"))
    exchange(admin, s1, s2)
    joined = [d for d in (d1, d2) if admin.role(d.actor) is not None]
    assert len(joined) == 1  # the join with the smaller entry id wins; the other has no effect
    assert any("already used" in why for _, why in admin.members.state.void)


def test_removal_rotates_and_the_removed_device_cannot_unwrap():
    (a, admin), (b, sb), (c, sc) = team()
    old_room, old_key = admin.room_id, admin.export_key()
    admin.remove(b.actor, upto=3)
    exchange(admin, sb, sc)
    assert admin.room_id != old_room and sc.room_id == admin.room_id and sc.export_key() == admin.export_key()
    assert sb.removed and sb.room_id == old_room and sb.export_key() == old_key
    assert admin.write_limit(b.actor) == 3
    # Old epochs stay readable by members: both keys in their keyring.
    assert len(sc.keyring()) == 2 and len(sb.keyring()) == 1


def test_only_admins_change_members():
    (a, admin), (b, sb), (c, sc) = team()
    with pytest.raises(Exception, match="admin"):
        sb.remove(a.actor)
    # A forged admin entry signed by a writer has no effect on anyone's state.
    forged = M.sign_entry(sb.members.body("remove", b.actor, m=a.actor, u=0), b.sign)
    admin.members.add(forged)
    assert admin.role(a.actor) == "admin"
    assert any("needs an admin" in why for _, why in admin.members.state.void)


def test_concurrent_admin_removals_merge_deterministically():
    (a, admin), (b, sb), _ = team()
    sb_admin_entry = admin.set_role(b.actor, "admin")
    exchange(admin, sb)
    assert sb.role() == "admin" and sb_admin_entry.kind == "role"
    # Concurrently: a removes b, b removes a.
    admin.remove(b.actor)
    sb.remove(a.actor)
    exchange(admin, sb)
    state_a, state_b = admin.members.state, sb.members.state
    assert state_a.roles == state_b.roles and [e.key_id for e in state_a.epochs] == [e.key_id for e in state_b.epochs]
    assert len(state_a.roles) == 2  # exactly one of the two admins survived (c the reader too)


def test_merge_is_order_independent():
    rng = random.Random(SEED)
    (a, admin), (b, sb), (c, sc) = team()
    admin.remove(c.actor)
    admin.invite(URL, role="reader")
    wires = admin.members.export()
    for trial in range(10):
        shuffled = wires[:]
        rng.shuffle(shuffled)
        log = M.MemberLog(NativeCrypto())
        for _ in range(len(shuffled)):
            log.merge(shuffled)
        assert log.state.roles == admin.members.state.roles, f"seed {SEED} trial {trial}"
        assert log.digest() == admin.members.digest()


def test_malformed_and_foreign_entries_are_refused():
    (a, admin), _, _ = team()
    raw, sig = admin.members.export()[1]
    with pytest.raises(MalformedMessageError):
        M.parse_entry([raw, bytes(64)], NativeCrypto())
    with pytest.raises(MalformedMessageError):
        M.parse_entry([raw[:-1], sig], NativeCrypto())
    other = Space.generate("other", identity=ident("z"), crypto=crypto("z"))
    assert admin.members.merge(other.members.export()) == 0
    assert admin.members.merge("not a list") == 0


def test_key_wrapping_round_trip_and_wrong_recipient():
    cr = NativeCrypto()
    mine, theirs = os.urandom(32), os.urandom(32)
    key = os.urandom(32)
    w = M.wrap_key(cr, cr.x25519_public_key(mine), key, b"aad")
    assert len(w) == M.WRAPPED_SIZE
    assert M.unwrap_key(cr, mine, w, b"aad") == key
    assert M.unwrap_key(cr, theirs, w, b"aad") is None
    assert M.unwrap_key(cr, mine, w, b"other aad") is None


def test_filter_writable_refuses_readers_and_removed_members_after_their_cut():
    limits = {b"r" * 32: 0, b"x" * 32: 2, b"w" * 32: None}

    def env(actor: bytes, seq: int) -> bytes:
        ch = Change("notes", "d", (), 1, actor, seq, 1 << 16, (("s", "f", seq),))
        return envelope(KIND_BLOCK, ch.encode())

    envs = [env(b"r" * 32, 1), env(b"x" * 32, 2), env(b"x" * 32, 3), env(b"w" * 32, 9)]
    kept, refused = filter_writable(envs, lambda actor: limits.get(actor))
    assert refused == 2 and kept == [envs[1], envs[3]]


def test_p256_devices_create_join_and_receive_rotated_keys():
    a = Identity.generate(crypto("p-a"), algorithm="p256")
    b, c = Identity.generate(crypto("p-b"), algorithm="p256"), ident("p-c")
    admin = Space.generate("mixed", identity=a, crypto=crypto("p-space"))
    sb = Space.from_invite(admin.invite(URL), identity=b, crypto=crypto("p-b-space"))
    sc = Space.from_invite(admin.invite(URL), identity=c, crypto=crypto("p-c-space"))
    exchange(admin, sb, sc)
    assert admin.role(a.actor) == "admin" and admin.role(b.actor) == admin.role(c.actor) == "writer"
    admin.remove(c.actor, upto=1)  # the new key is wrapped to the P-256 member b
    exchange(admin, sb, sc)
    assert sb.export_key() == admin.export_key() and sc.removed
    # an entry claiming to be a's but signed by b is refused
    forged = M.sign_entry({**M.parse_entry(admin.members.export()[-1], crypto("x")).body}, b.sign)
    with pytest.raises(MalformedMessageError, match="signature"):
        M.parse_entry(forged.wire(), crypto("x"))


# --------------------------------------------------------------- hostile log entries


def forged_invites(who: Identity, space: Space, parents_of, n: int) -> list[list]:
    """`n` invite entries `who` has no right to write (void), parents chosen per entry."""
    return [M.sign_entry({"v": 1, "k": "invite", "a": who.actor, "p": parents_of(k), "s": space.space_id,
                          "i": k.to_bytes(32, "big"), "ix": bytes(32), "r": "admin"}, who.sign).wire()
            for k in range(n)]


class CountingCrypto(NativeCrypto):
    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify_actor(self, actor, message, sig):
        self.verified += 1
        return super().verify_actor(actor, message, sig)


def test_entries_waiting_for_parents_are_bounded_apart_and_never_block_admins(monkeypatch):
    monkeypatch.setattr(M, "MAX_LOG_ENTRIES", 128)
    monkeypatch.setattr(M, "ADMIN_RESERVE", 8, raising=False)
    (a, admin), (b, sb), (c, sc) = team()
    orphans = forged_invites(c, admin, lambda k: [(k + 1).to_bytes(32, "big")], 128)
    admin.members.merge(orphans)
    with pytest.raises(MemberLogFullError):
        admin.members.add(M.parse_entry(forged_invites(c, admin, lambda k: [bytes(32)], 1)[0], NativeCrypto()))
    admin.remove(c.actor)  # the reader who sent them
    admin.invite(URL)
    assert admin.members.state.removed == {c.actor}
    # what this device stores and re-publishes of them is bounded too
    assert len(admin.members.export()) <= len(admin.members.entries) + M.MAX_WAITING_ENTRIES


def test_a_log_filled_with_void_entries_keeps_room_for_admins(monkeypatch):
    monkeypatch.setattr(M, "MAX_LOG_ENTRIES", 128)
    monkeypatch.setattr(M, "ADMIN_RESERVE", 8, raising=False)
    (a, admin), (b, sb), (c, sc) = team()
    chain, heads = [], sc.members.heads()
    for k in range(130):  # a reader's void entries, each on the previous one: they all settle
        e = M.sign_entry({**sc.members.body("invite", c.actor, i=k.to_bytes(32, "big"), ix=bytes(32),
                                            r="admin"), "p": heads}, c.sign)
        chain.append(e.wire())
        heads = [e.id]
    admin.members.merge(chain)
    sb.members.merge(chain[:50])  # a replica that got only part of the flood
    assert len(admin.members.entries) <= 120
    entries = admin.remove(c.actor)
    sb.members.merge([e.wire() for e in entries])  # settles: it names no void entry
    sb.refresh()
    assert sb.members.state.removed == {c.actor} and sb.export_key() == admin.export_key()


def test_merging_is_linear_and_a_log_received_again_costs_no_signature_check():
    (a, admin), (b, sb), (c, sc) = team()
    cr = CountingCrypto()
    log = M.MemberLog(cr)
    log.merge(admin.members.export())
    orphans = forged_invites(c, admin, lambda k: [(k + 1).to_bytes(32, "big")], 1000)
    before = cr.verified
    log.merge(orphans)
    first = cr.verified - before
    log.merge(admin.members.export() + orphans)
    assert cr.verified == before + first  # held or refused: a hash each, no signature check
    assert first <= M.MAX_WAITING_ENTRIES  # the rest is refused before its check


def test_entries_that_arrive_before_their_parents_settle_when_the_parents_come():
    (a, admin), _, _ = team()
    for _ in range(20):
        admin.invite(URL)
    wires = admin.members.export()
    log = M.MemberLog(NativeCrypto())
    assert log.merge(wires[:0:-1]) == len(wires) - 1 and not log.entries  # all wait for the root
    log.merge(wires[:1])
    assert log.digest() == admin.members.digest() and log.state.invites == admin.members.state.invites


def test_void_heads_never_push_an_admin_entry_past_max_parents():
    (a, admin), (b, sb), (c, sc) = team()
    heads = sc.members.heads()
    voids = forged_invites(c, admin, lambda k: heads, M.MAX_PARENTS + 1)
    admin.members.merge(voids)
    sb.members.merge(voids)
    assert len(admin.members.heads()) == M.MAX_PARENTS + 1
    entries = admin.remove(c.actor)
    for e in entries:
        assert len(e.parents) <= M.MAX_PARENTS
        M.parse_entry(e.wire(), NativeCrypto())  # what every other replica checks
    exchange(admin, sb)
    assert sb.members.state.removed == {c.actor} and sb.room_id == admin.room_id


def test_void_entries_are_never_named_as_parents():
    (a, admin), (b, sb), (c, sc) = team()
    admin.set_role(b.actor, "admin")
    exchange(admin, sb)
    sb.invite(URL)  # an effective entry the admin has not seen yet
    heads = sc.members.heads()
    voids = forged_invites(c, admin, lambda k: heads, M.MAX_PARENTS + 1)
    admin.members.merge(voids)
    admin.members.merge(sb.members.export())
    void = {eid for eid, _ in admin.members.state.void}
    kept = admin.members.parents_for_new()
    assert len(void) == M.MAX_PARENTS + 1 and not void & set(kept)
    assert kept == sorted(set(heads) | set(sb.members.heads()))


def test_an_entry_no_other_replica_would_accept_is_never_written():
    (a, admin), _, _ = team()
    with pytest.raises(ValidationError, match="refused by every other replica"):
        M.sign_entry(admin.members.body("rotate", a.actor, c=bytes(16), w=[[a.actor, bytes(80)]] * 900),
                     a.sign)
    with pytest.raises(ValidationError):
        M.sign_entry({**admin.members.body("invite", a.actor, i=bytes(32), ix=bytes(32), r="admin"),
                      "p": [bytes([k]) * 32 for k in range(M.MAX_PARENTS + 1)]}, a.sign)


def test_a_log_in_its_reserve_still_takes_an_invite_and_its_join(monkeypatch):
    monkeypatch.setattr(M, "MAX_LOG_ENTRIES", 64)
    monkeypatch.setattr(M, "ADMIN_RESERVE", 32)
    (a, admin), (b, sb), (c, sc) = team()
    chain, heads = [], sc.members.heads()
    for k in range(40):
        e = M.sign_entry({**sc.members.body("invite", c.actor, i=k.to_bytes(32, "big"), ix=bytes(32),
                                            r="admin"), "p": heads}, c.sign)
        chain.append(e.wire())
        heads = [e.id]
    admin.members.merge(chain)
    sb.members.merge(chain)
    assert len(admin.members.entries) == 32
    d = ident("d")
    sd = Space.from_invite(admin.invite(URL), identity=d, crypto=crypto("d-space"))
    sd.members.merge(admin.members.export())
    sb.members.merge(sd.members.export())  # the invite and the join in one merge
    assert sb.members.state.roles.get(d.actor) == "writer"
