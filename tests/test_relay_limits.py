"""relay/limits.py: client keys, the pending-connection table, caps and keyed rate buckets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostracon.core.errors import ValidationError
from ostracon.relay.limits import LocalLimits, PendingConnections, StoreBudget, client_key
from ostracon.relay.redis_backend import RedisLimits
from redis_server import redis_server  # noqa: F401  (fixture)


class Conn:
    def __init__(self, waiting: bool = True):
        self.waiting = waiting
        self.evicted = False

    def waiting_for_head(self) -> bool:
        return self.waiting

    def evict(self) -> None:
        self.evicted = True


def test_client_key_groups_ipv6_by_64_and_unwraps_mapped_ipv4():
    assert client_key(("203.0.113.7", 5000)) == "203.0.113.7"
    assert client_key(("2001:db8:1:2:aaaa::1", 1, 0, 0)) == client_key(("2001:db8:1:2:ffff::9", 2, 0, 0))
    assert client_key(("2001:db8:1:2::1", 1, 0, 0)) != client_key(("2001:db8:1:3::1", 1, 0, 0))
    assert client_key(("::ffff:198.51.100.1", 1, 0, 0)) == "198.51.100.1"
    assert client_key(None) == client_key("not-an-ip") == "local"


def test_pending_table_evicts_the_oldest_waiting_connection_not_the_newcomer():
    table = PendingConnections(max_total=3, per_key=2)
    a, b, c = Conn(), Conn(), Conn(waiting=False)
    assert table.admit(a, "x") and table.admit(b, "y") and table.admit(c, "z")
    d = Conn()
    assert table.admit(d, "w")  # full: a (oldest, waiting) goes
    assert a.evicted and not b.evicted and len(table) == 3 and table.evicted == 1
    # Per key: the key's own oldest waiting connection goes first.
    e = Conn()
    assert table.admit(e, "w")
    assert b.evicted and not d.evicted  # b was globally oldest waiting; w had 1 < per_key
    f = Conn()
    assert table.admit(f, "w")  # w holds 2 = per_key: its own oldest (d) goes
    assert d.evicted and not e.evicted
    # Nothing evictable: refused.
    full = PendingConnections(max_total=1, per_key=1)
    assert full.admit(Conn(waiting=False), "x")
    assert not full.admit(Conn(), "y") and full.saturated
    full2 = PendingConnections(max_total=2, per_key=5)
    busy = Conn(waiting=False)
    full2.admit(busy, "x")
    full2.discard(busy)
    assert len(full2) == 0 and full2.count("x") == 0
    with pytest.raises(ValidationError):
        PendingConnections(0, 1)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_pending_table_never_exceeds_its_bounds(ops, total, per_key):
    table = PendingConnections(total, per_key)
    for key, waiting in ops:
        table.admit(Conn(waiting), key)
        assert len(table) <= total
        assert all(table.count(k) <= per_key for k in "abc")


def test_caps_count_per_kind_and_key():
    lim = LocalLimits(lambda: 0.0)
    assert lim.acquire("ip", "a", 2) and lim.acquire("ip", "a", 2) and not lim.acquire("ip", "a", 2)
    assert lim.acquire("ip", "b", 2) and lim.acquire("room", "a", 1)
    assert lim.held("ip", "a") == 2
    lim.release("ip", "a")
    assert lim.acquire("ip", "a", 2) and lim.held("ip", "a") == 2
    for _ in range(3):
        lim.release("room", "a")
    assert lim.held("room", "a") == 0


def test_throttle_waits_pay_back_debt_exactly():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    t = [0.0]
    lim = LocalLimits(lambda: t[0])
    rate, burst = 10.0, 5.0
    for _ in range(5):
        assert lim.throttle("k", rate, burst, 1) == 0.0, seed
    wait = lim.throttle("k", rate, burst, 1)
    assert wait == pytest.approx(0.1), seed
    # Waiting exactly as told always makes the next single charge free of further debt growth.
    for _ in range(50):
        t[0] += wait
        amount = rng.choice([0.5, 1.0, 2.0])
        wait = lim.throttle("k", rate, burst, amount)
        assert wait == pytest.approx(amount / rate), seed
    assert lim.throttle("other", rate, burst, 1) == 0.0  # keys are independent


def test_bucket_table_is_bounded_and_forgets_least_recent_keys():
    lim = LocalLimits(lambda: 0.0, max_buckets=2)
    lim.throttle("a", 1.0, 1.0, 1)
    lim.throttle("b", 1.0, 1.0, 1)
    lim.throttle("a", 1.0, 1.0, 0)  # a is now most recent
    lim.throttle("c", 1.0, 1.0, 1)  # b goes
    assert lim.throttle("b", 1.0, 1.0, 1) == 0.0  # full again: forgotten
    assert lim.throttle("c", 1.0, 1.0, 1) > 0.0  # still remembered (in debt)
    with pytest.raises(ValidationError):
        LocalLimits(lambda: 0.0, max_buckets=0)


@pytest.fixture(params=["local", "redis"])
def shared_limits(request):
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        lim = RedisLimits(server.client(), "ab" * 16)
    else:
        lim = LocalLimits(lambda: 0.0)
    yield lim
    lim.close()


def test_store_budget_refuses_past_it_without_charging(shared_limits):
    # 1000 bytes per ~11.6 days: nothing refills while the test runs, on any clock.
    budget = StoreBudget(shared_limits, 1000, 1e6)
    assert budget.take("a", 600) and budget.take("a", 300)
    assert not budget.take("a", 200)  # would put the address past its budget
    assert not budget.take("a", 200)  # refused again: a refusal costs nothing ...
    assert budget.take("a", 100)  # ... so what is left still fits
    assert not budget.take("a", 1)
    assert budget.take("b", 1000)  # addresses are independent
    # Strict throttling never goes into debt; the wait says when the charge would fit.
    assert shared_limits.throttle("k", 10.0, 5.0, 8.0, strict=True) == pytest.approx(0.3, abs=0.01)
    assert shared_limits.throttle("k", 10.0, 5.0, 5.0, strict=True) == 0.0
    with pytest.raises(ValidationError):
        StoreBudget(shared_limits, 0, 1.0)


def test_store_budget_refills_over_its_window_and_survives_bucket_churn():
    t = [0.0]
    lim = LocalLimits(lambda: t[0], max_buckets=4)
    budget = StoreBudget(lim, 1000, 100.0)  # 10 bytes/s
    assert budget.take("a", 1000) and not budget.take("a", 10)
    t[0] += 1.0
    assert budget.take("a", 10) and not budget.take("a", 10)
    # Another client cycling through room buckets pushes out refilled buckets, not the
    # address's half-spent budget (forgetting it would refill it).
    for i in range(20):
        lim.throttle(f"b:room{i}:x", 1000.0, 1000.0, 1.0)
        t[0] += 0.01
    assert not budget.take("a", 10)
    t[0] += 1.0
    assert budget.take("a", 10)
