"""Open verifies what it loads; `Database.verify()` / `ostracon verify` name every bad block;
a missing snapshot refuses to open; a device never reuses its own sequence numbers.

Scenarios 6 (a forged store reads as verified) and 7 (a missing snapshot opens as an empty
database) of the integrity audit, plus the verified-seals watermark (core/verify.py).
"""

from __future__ import annotations

import os
import zlib

import pytest

import ostracon
from ostracon.cli import main
from ostracon.core.errors import CorruptBlockError, MissingSnapshotError, OwnHistoryMissingError
from ostracon.core.verify import WATERMARK_META, SealChain, read_watermark, verify_replica
from ostracon.crypto.identity import Identity
from ostracon.crypto.native import NativeCrypto
from ostracon.storage import logformat as lf

NOW = 1_700_000_000_000


def ident(n: int) -> Identity:
    return Identity.from_seed(bytes([n]) * 32)


def opened(path, n=1, **kw):
    t = [NOW]

    def clock():
        t[0] += 1
        return t[0]
    return ostracon.open(path, identity=ident(n), clock=clock, **kw)


def forge(path, old: bytes, new: bytes) -> None:
    """Rewrite `old` (inside one stored block) as `new` and fix the record's CRC: damage
    that framing checks cannot see."""
    assert len(old) == len(new)
    for name in sorted(os.listdir(path)):
        if not name.startswith("seg-"):
            continue
        buf = bytearray(open(os.path.join(path, name), "rb").read())
        at = buf.find(old)
        if at < 0:
            continue
        recs, _ = lf.walk(memoryview(bytes(buf)), lf.SEG_HEADER_SIZE, len(buf), 1 << 30, 1 << 62)
        off, _f, _k, _p, start, nxt = next(r for r in recs if r[4] <= at < r[5])
        buf[at:at + len(new)] = new
        buf[off + 2:off + 6] = zlib.crc32(bytes(buf[off + 6:nxt])).to_bytes(4, "big")
        open(os.path.join(path, name), "wb").write(bytes(buf))
        return
    raise AssertionError("text not found in any segment")


@pytest.fixture()
def store(tmp_path):
    path = tmp_path / "db"
    with opened(path) as db:
        col = db.collection("notes")
        for k in range(5):
            col.create({"title": f"authentic-{k}"}, id=f"n{k}")
            db.flush()
    return path


# --------------------------------------------------------------- 6. forged store


def test_forged_block_is_refused_at_open_naming_segment_offset_and_cid(store):
    forge(store, b"authentic-2", b"FORGED!!!-2")
    with pytest.raises(CorruptBlockError) as err:
        opened(store)
    e = err.value
    assert e.segment and e.segment.startswith("seg-") and e.offset is not None and e.cid
    assert e.cid in str(e) and e.segment in str(e)


def test_ostracon_verify_names_every_bad_block(store, capsys):
    forge(store, b"authentic-1", b"FORGED!!!-1")
    forge(store, b"authentic-3", b"FORGED!!!-3")
    assert main(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if line.startswith("block ") and "seg-" in line]
    assert len(bad) == 2 and "FAILED" in out


def test_repair_quarantines_reports_and_history_never_says_verified_for_it(store):
    with opened(store) as db:
        honest = db.blocks_since({})  # an authentic copy, as a peer holds it
    forge(store, b"authentic-4", b"FORGED!!!-4")
    db = opened(store, repair=True)
    rep = db.open_report()
    assert any("quarantined" in note for note in rep.notes)
    col = db.collection("notes")
    assert col.get("n4") is None and col.get("n3")["title"] == "authentic-3"
    assert all(c["signature"]["status"] == "verified" for c in col.history("n3"))
    # The forged slot was our own: writing now would reuse its sequence number.
    with pytest.raises(OwnHistoryMissingError):
        col.create({"title": "too early"})
    db.apply_blocks(honest)  # a peer supplies the authentic block
    assert col.get("n4")["title"] == "authentic-4"
    col.create({"title": "after recovery"}, id="n5")
    db.close()
    with opened(store) as db:  # the quarantine is remembered; the store verifies again
        assert db.collection("notes").get("n5")["title"] == "after recovery"
        assert db.verify() == []


def test_clean_store_verifies_and_uses_the_watermark(store):
    with opened(store) as db:
        assert db.verify() == []
        raw = db.storage.get_meta(WATERMARK_META)
        wm = read_watermark(raw, db.replica.actor, db.crypto.ed25519_verify)
        assert wm is not None and wm[0] == 5
        # A watermark signed by someone else is ignored (every seal is then checked).
        other = SealChain()
        assert read_watermark(other.watermark(db.replica.actor, ident(2).sign), db.replica.actor,
                              db.crypto.ed25519_verify) is None


def test_forged_seal_signature_is_caught(store):
    # A valid-looking seal for a forged block needs the device's key: rewriting a seal's
    # digest leaves a signature that does not verify.
    with opened(store) as db:
        env = db.blocks_since({})
        seal = [e for e in env if e[1] == 2][0]
    payload = seal[4:] if seal[2] == 0xC4 else seal[5:]
    digest_at = payload.index(b"\xa1x\xc4\x20") + 4
    fake = bytes(32)
    forge(store, payload[digest_at:digest_at + 32], fake)
    with pytest.raises(CorruptBlockError):
        opened(store)


# --------------------------------------------------------------- 7. missing snapshot


def test_missing_snapshot_refuses_to_open_and_repair_never_reuses_sequence_numbers(tmp_path):
    path = tmp_path / "db"
    with opened(path) as db:
        for k in range(3):
            # text that compresses: compaction writes a snapshot only when it is smaller
            db.collection("notes").create({"k": k, "text": "lorem ipsum " * 100}, id=f"n{k}")
        db.compact()
        db.collection("notes").create({"k": 3}, id="n3")
        peer = opened(None, n=2)
        peer.apply_blocks(db.blocks_since({}))
    snaps = [n for n in os.listdir(path) if n.endswith(".snap")]
    assert snaps
    for n in snaps:
        os.remove(path / n)
    with pytest.raises(MissingSnapshotError) as err:
        opened(path)
    assert "snapshot" in str(err.value)
    db = opened(path, repair=True)
    assert any("missing" in note for note in db.open_report().notes)
    with pytest.raises(OwnHistoryMissingError):
        db.collection("notes").create({"k": "reused?"})
    db.apply_blocks(peer.blocks_since(db.version_vector()))  # pull own history back
    assert [db.collection("notes").get(f"n{k}")["k"] for k in range(4)] == [0, 1, 2, 3]
    db.collection("notes").create({"k": 4}, id="n4")
    db.flush()
    assert db.version_vector()[db.actor] == 5
    # Its history still agrees with what the peer saw: the peer accepts the new block.
    assert peer.apply_blocks(db.blocks_since(peer.version_vector())) == 2  # n3 and n4
    db.close()


def test_the_own_sequence_floor_belongs_to_the_identity_that_wrote(tmp_path):
    path = tmp_path / "db"
    with opened(path, n=1) as db:
        db.collection("notes").create({"k": 1}, id="a")
    # Another identity opening the same directory has no own history to miss: it writes.
    with opened(path, n=3) as other:
        other.collection("notes").create({"k": 2}, id="b")
        other.flush()
        assert other.version_vector()[other.actor] == 1
    with opened(path, n=1) as db:
        db.collection("notes").create({"k": 3}, id="c")
        db.flush()
        assert db.version_vector()[db.actor] == 2


def test_unsealed_blocks_are_a_problem_unless_they_await_this_databases_flush(tmp_path):
    db = opened(tmp_path / "db", sink_interval_ms=3_600_000)
    db.collection("t").create({"a": 1}, id="x")
    db.collection("t").create({"a": 2}, id="y")
    replica, actor = db.replica, bytes.fromhex(db.actor)
    check = NativeCrypto().ed25519_verify
    assert verify_replica(replica, check) == [f"actor {db.actor[:12]}: blocks 1..2 are not covered by a seal"]
    assert verify_replica(replica, check, awaiting_seal=(actor,)) == []
    assert db.verify() == []
    db.close()
