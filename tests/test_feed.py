"""The change feed (core/feed.py): cursors, retention, epochs, bounded subscribers."""

import hashlib

import pytest

from ostracon.core.encoding import encode_canonical
from ostracon.core.errors import CursorError, ValidationError
from ostracon.core.feed import SUBSCRIBER_BUFFER, ChangeFeed


def publish(feed, n, collection="todos", start=0):
    return [feed.publish(collection, f"d{start + i}", 1, False, 1000, 1000 + i, {"i": start + i})
            for i in range(n)]


def test_events_are_numbered_without_gaps_and_carry_the_document_summary():
    f = ChangeFeed("e1")
    evs = publish(f, 3)
    assert [e.seq for e in evs] == [1, 2, 3]
    e = evs[1]
    assert (e.collection, e.id, e.version, e.deleted, e.created, e.updated) == ("todos", "d1", 1, False, 1000, 1001)
    assert e.kind == "change" and e.cursor == "e1.2"
    assert e.data_hash == hashlib.sha256(encode_canonical({"i": 1})).hexdigest()
    assert e.to_dict()["data_hash"] == e.data_hash and e.to_dict()["id"] == "d1"


def test_since_resumes_from_a_cursor():
    f = ChangeFeed("e1")
    publish(f, 3)
    evs, cur = f.since(None)
    assert [e.seq for e in evs] == [1, 2, 3] and cur == "e1.3"
    publish(f, 2, start=3)
    evs, cur2 = f.since(cur)
    assert [e.id for e in evs] == ["d3", "d4"] and cur2 == "e1.5"
    assert f.since(cur2) == ([], "e1.5")
    assert [e.seq for e in f.since("")[0]] == [1, 2, 3, 4, 5]


def test_since_with_limit_returns_a_cursor_to_continue():
    f = ChangeFeed("e1")
    publish(f, 5)
    seen = []
    cur = None
    while True:
        evs, cur = f.since(cur, limit=2)
        if not evs:
            break
        seen += [e.seq for e in evs]
    assert seen == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("kw", [{"limit": 0}, {"limit": -1}, {"limit": 2.5}, {"limit": True},
                                {"limit": "3"}, {"collection": 5}, {"collection": b"todos"}])
def test_since_refuses_a_limit_or_collection_of_the_wrong_kind(kw):
    # limit=0 used to return one event, 2.5 three, "3" a TypeError; collection=5 nothing.
    f = ChangeFeed("e1")
    publish(f, 5)
    with pytest.raises(ValidationError):
        f.since(None, **kw)


def test_per_collection_filtering():
    f = ChangeFeed("e1")
    publish(f, 2, "todos")
    publish(f, 2, "notes", start=2)
    publish(f, 1, "todos", start=4)
    evs, cur = f.since(None, collection="notes")
    assert [e.id for e in evs] == ["d2", "d3"] and cur == "e1.5"
    evs, cur = f.since(None, collection="todos", limit=2)
    assert [e.id for e in evs] == ["d0", "d1"]
    evs, cur = f.since(cur, collection="todos")
    assert [e.id for e in evs] == ["d4"]


def test_a_cursor_older_than_the_retention_is_refused():
    f = ChangeFeed("e1", retention=3)
    publish(f, 5)                      # only 3, 4, 5 are kept
    evs, cur = f.since(None)           # no cursor: what is retained, at any feed length
    assert [e.seq for e in evs] == [3, 4, 5] and cur == "e1.5"
    with pytest.raises(CursorError):
        f.since("e1.1")
    evs, _ = f.since("e1.2")           # exactly at the edge: nothing is missing
    assert [e.seq for e in evs] == [3, 4, 5]


@pytest.mark.parametrize("cursor", ["other.1", "e2.1", "e1", "e1.x", "e1.-1", "e1.99", "x.y.z", 5, b"e1.1",
                                    "e1.\u0662", "e1.\uff12", "e1.1_0", "e1.+1", "e1. 1", "e1.01", "e1." + "1" * 40])
def test_foreign_malformed_or_future_cursors_are_refused(cursor):
    f = ChangeFeed("e1")
    publish(f, 3)
    with pytest.raises(CursorError):
        f.since(cursor)


@pytest.mark.parametrize("retention", [0, -1, 2**31, 2**63, 10**6 + 1, True, 1.5, "10"])
def test_retention_out_of_range_is_a_validation_error_in_every_runtime(retention):
    with pytest.raises(ValidationError, match="feed_retention"):
        ChangeFeed("e1", retention)


def test_subscriber_buffer_beyond_the_portable_range_is_refused():
    with pytest.raises(ValidationError):
        ChangeFeed("e1").subscribe(buffer=2**31)


def test_cursor_from_another_epoch_is_refused_even_when_the_seq_exists():
    a, b = ChangeFeed("aaaa"), ChangeFeed("bbbb")
    publish(a, 3)
    publish(b, 3)
    _, cur = a.since(None)
    with pytest.raises(CursorError):
        b.since(cur)


# ----------------------------------------------------------------------------- subscribers

def test_subscriber_polls_buffered_events():
    f = ChangeFeed("e1")
    sub = f.subscribe()
    assert sub.buffer == SUBSCRIBER_BUFFER == 10
    publish(f, 3)
    assert [e.seq for e in sub.poll()] == [1, 2, 3]
    assert sub.poll() == []


def test_subscriber_overflow_is_reported_never_silent():
    f = ChangeFeed("e1")
    sub = f.subscribe(buffer=2)
    publish(f, 5)
    got = sub.poll()
    assert len(got) == 1 and got[0].kind == "overflow"
    assert got[0].data_hash == "" and sub.overflows == 1
    # the marker's cursor lets the consumer resume after its rebuild
    marker = got[0]
    publish(f, 1, start=5)
    evs, _ = f.since(marker.cursor)
    assert [e.id for e in evs] == ["d5"]
    # and the subscription works normally again
    assert [e.id for e in sub.poll()] == ["d5"]


def test_every_event_is_either_delivered_or_covered_by_an_overflow_marker():
    f = ChangeFeed("e1")
    sub = f.subscribe(buffer=3)
    delivered, markers = [], 0
    seq = 0
    for burst in [1, 2, 5, 3, 4, 1, 7]:
        publish(f, burst, start=seq)
        seq += burst
        for e in sub.poll():
            if e.kind == "overflow":
                markers += 1
            else:
                delivered.append(e.seq)
    lost = set(range(1, seq + 1)) - set(delivered)
    assert lost and markers >= 1  # bursts over the buffer did overflow...
    assert delivered == sorted(delivered)
    # ...and every burst that lost events produced a marker
    assert markers == sum(1 for b in [1, 2, 5, 3, 4, 1, 7] if b > 3)


def test_subscriber_collection_filter():
    f = ChangeFeed("e1")
    sub = f.subscribe(collection="notes")
    publish(f, 2, "todos")
    publish(f, 1, "notes", start=2)
    assert [e.id for e in sub.poll()] == ["d2"]


def test_callback_mode():
    f = ChangeFeed("e1")
    seen = []
    sub = f.subscribe(callback=seen.append, collection="todos", buffer=1)
    publish(f, 5, "todos")       # a callback is never overflowed: it is called synchronously
    publish(f, 1, "notes", start=5)
    assert [e.seq for e in seen] == [1, 2, 3, 4, 5]
    sub.close()
    publish(f, 1, "todos", start=6)
    assert len(seen) == 5


def test_closed_subscription_gets_nothing():
    f = ChangeFeed("e1")
    sub = f.subscribe()
    sub.close()
    publish(f, 2)
    assert sub.poll() == [] and sub.closed


def test_buffer_must_be_positive():
    with pytest.raises(ValidationError):
        ChangeFeed("e1").subscribe(buffer=0)


def test_a_raising_callback_does_not_starve_the_other_subscribers():
    f = ChangeFeed("e1")

    def broken(ev):
        raise RuntimeError("consumer bug")

    f.subscribe(callback=broken)
    seen = []
    f.subscribe(callback=seen.append)
    polled = f.subscribe()
    with pytest.raises(RuntimeError):
        publish(f, 1)
    assert [e.seq for e in seen] == [1] and [e.seq for e in polled.poll()] == [1]
    assert [e.seq for e in f.since(None)[0]] == [1]


def test_events_carry_the_full_path_and_a_capped_payload():
    f = ChangeFeed("e1", payload_max_bytes=64)
    small = f.publish("pages", "p1", 1, False, 1, 1, {"t": "x"})
    big = f.publish("pages", "p2", 1, False, 1, 1, {"t": "y" * 100})
    assert small.path == "pages/p1" and small.to_dict()["path"] == "pages/p1"
    assert small.payload == {"t": "x"} and not small.payload_truncated
    d = small.to_dict()
    assert d["payload"] == {"t": "x"} and d["payload_truncated"] is False
    assert big.payload is None and big.payload_truncated
    d = big.to_dict()
    assert d["payload"] is None and d["payload_truncated"] is True
    # the hash still covers the whole document even when the payload is cut
    assert d["data_hash"] == hashlib.sha256(encode_canonical({"t": "y" * 100})).hexdigest()
    exact = encode_canonical({"t": "z" * 50})
    at_cap = ChangeFeed("e2", payload_max_bytes=len(exact)).publish("c", "d", 1, False, 1, 1, {"t": "z" * 50})
    assert at_cap.payload == {"t": "z" * 50}


def test_the_default_cap_is_32_kib_and_payloads_can_be_off():
    from ostracon.core.feed import PAYLOAD_MAX_BYTES
    assert PAYLOAD_MAX_BYTES == 32 * 1024
    f = ChangeFeed("e1")
    assert f.publish("c", "d", 1, False, 1, 1, {"t": "a" * 40_000}).to_dict()["payload_truncated"]
    off = ChangeFeed("e1", payload=False)
    ev = off.publish("c", "d", 1, False, 1, 1, {"t": "a"})
    assert ev.fields is None and ev.payload is None and not ev.payload_truncated
    assert ev.to_dict()["payload"] is None and ev.to_dict()["path"] == "c/d"
    with pytest.raises(ValidationError):
        ChangeFeed("e1", payload_max_bytes=-1)


def test_database_options_reach_the_feed():
    import ostracon
    with ostracon.open(None, feed_payload_max_bytes=16) as db:
        db.collection("c").create({"t": "x" * 40}, id="d")
        [ev], _ = db.changes()
        assert ev.path == "c/d" and ev.payload_truncated
    with ostracon.open(None, feed_payload=False) as db:
        db.collection("c").create({"t": "x"}, id="d")
        [ev], _ = db.changes()
        assert ev.payload is None and ev.data_hash == ""
