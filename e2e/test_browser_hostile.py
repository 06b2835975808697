"""Hostile input through the ES-module API and the tabs' BroadcastChannel, in Chromium.

- keys that are special to JS objects (`__proto__`, `constructor`) are data like any other key:
  kept in nested maps, refused as field names exactly as natively, never a prototype;
- a value nested past the converters' limit is refused for its own call only: the calls that
  share its batch in the worker are answered as usual;
- a same-origin page posting forged messages on the tabs' channel cannot close the leader's
  engine, stall followers with a goodbye that is not their leader's, or strand their calls
  with a forged leader announcement.
"""

from __future__ import annotations

import uuid

import pytest

from conftest import goto_e2e


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _open(page, name: str) -> None:
    page.evaluate("async (n) => { window.db = await Ostracon.open({name: n}); }", name)


@pytest.fixture(scope="module")
def db_page(shared_context, e2e_url):
    page = shared_context.new_page()
    goto_e2e(page, e2e_url)
    page.evaluate("async (n) => { window.db = await Ostracon.open({name: n, tabs: 'exclusive'}); }", _name("hostile"))
    yield page
    page.close()


def test_proto_keys_are_data_in_maps_and_reserved_as_field_names(db_page):
    r = db_page.evaluate("""async () => {
      const t = db.collection("proto");
      const meta = JSON.parse('{"__proto__": {"admin": true}, "constructor": 1, "x": {"__proto__": null}}');
      const named = await t.create({constructor: "Bob", meta: {constructor: {name: "Object"}, toString: 2}});
      const back = await t.get(named);
      const id = await t.create({meta});
      const d = await t.get(id);
      const refused = async (f) => { try { await f(); return "accepted"; } catch (e) { return e.name; } };
      return {
        own: Object.keys(d.meta).sort(), proto: JSON.stringify(d.meta["__proto__"]),
        plain: Object.getPrototypeOf(d.meta) === Object.prototype, admin: d.meta.admin === undefined,
        polluted: ({}).admin !== undefined, inner: Object.keys(d.meta.x),
        field: await refused(() => t.create(JSON.parse('{"__proto__": {"admin": true}, "a": 1}'))),
        filter: await refused(() => t.find(JSON.parse('{"__proto__": {"_eq": 1}}'))),
        found: (await t.find({"meta.constructor": {_eq: 1}})).length,
        named: [back.constructor, JSON.stringify(back.meta)],
      };
    }""")
    assert r["own"] == ["__proto__", "constructor", "x"] and r["proto"] == '{"admin":true}'
    assert r["plain"] and r["admin"] and not r["polluted"] and r["inner"] == ["__proto__"]
    assert r["field"] == "ValidationError" and r["filter"] == "ValidationError"
    assert r["found"] == 1
    # "constructor" and "toString" are ordinary names (pyodide's toPy alone leaves an object
    # whose own `constructor` is not Object's unconverted).
    assert r["named"] == ["Bob", '{"constructor":{"name":"Object"},"toString":2}']


def test_non_finite_numbers_are_refused(db_page):
    r = db_page.evaluate("""async () => {
      const t = db.collection("nan");
      const id = await t.create({n: 1});
      const out = [];
      for (const f of [() => t.create({x: NaN}), () => t.patch(id, {x: Infinity}),
                       () => t.increment(id, "n", NaN), () => t.increment(id, "n", -Infinity),
                       () => t.find({n: {_gt: NaN}})]) {
        try { await f(); out.push("accepted"); } catch (e) { out.push(e.name); }
      }
      return {out, n: (await t.get(id)).n};
    }""")
    assert r["out"] == ["ValidationError"] * 5 and r["n"] == 1


NESTED_JS = """async (depths) => {
  const t = db.collection("deep");
  const out = [];
  for (const d of depths) {
    let v = 1;
    for (let i = 0; i < d; i++) v = {v};
    const deep = t.create({v}).then(() => "accepted", (e) => e.name);
    const honest = t.create({ok: true}).then(() => "accepted", (e) => e.name);
    out.push([await deep, await honest]);
  }
  for (const bad of [{f: () => 1}, {n: document.body}, {m: new Map([["a", 1]])}]) {
    out.push(await t.create(bad).then(() => "accepted", (e) => e.name + (e.is("OstraconError") ? "" : "?")));
  }
  return out;
}"""


def test_too_deep_or_uncopyable_values_fail_their_own_call_only(db_page):
    # 60 levels are stored (the encoding takes 64, core/encoding.py), 99 are refused by the
    # engine, thousands before they leave the page: a few thousand levels used to be copied
    # by the page but dropped on the way to the worker, and the call never settled.
    r = db_page.evaluate(NESTED_JS, [60, 99, 3000, 20000])
    assert r == [["accepted", "accepted"]] + [["ValidationError", "accepted"]] * 3 + ["ValidationError"] * 3


FORGE_JS = """async (n) => {
  // A same-origin page that is not an Ostracon tab: it listens on the channel and forges.
  const ch = new BroadcastChannel(`ostracon-tabs:${n}`);
  window.forged = {replies: []};
  ch.onmessage = (ev) => {
    const m = ev.data;
    if (m.t === "leader") window.forged.leader = m;
    if (m.t === "reply" && m.to === "forger") window.forged.replies.push(m);
  };
  window.forgeChannel = ch;
  ch.postMessage({t: "hello", tab: "forger"});
}"""


def test_forged_tab_messages_cannot_close_stall_or_strand(shared_context, e2e_url):
    name = _name("forged")
    leader, follower, forger = (shared_context.new_page() for _ in range(3))
    try:
        for p in (leader, follower, forger):
            goto_e2e(p, e2e_url)
        _open(leader, name)
        _open(follower, name)
        assert follower.evaluate("db.role") == "follower"
        forger.evaluate(FORGE_JS, name)
        forger.wait_for_function("window.forged.leader !== undefined")
        # The engine's lifecycle is not callable from the channel: the leader answers with an error.
        forger.evaluate("""() => { const l = window.forged.leader;
          for (const [cid, method] of [[1, "close"], [2, "open"], [3, "tick"], [4, "__testInstall"], [5, 7]])
            forgeChannel.postMessage({t: "call", tab: "forger", epoch: l.epoch, cid, method, args: []});
          forgeChannel.postMessage({t: "call", tab: "forger", epoch: l.epoch, cid: 6, method: "count",
                                    args: "x"}); }""")
        forger.wait_for_function("window.forged.replies.length === 6")
        names = forger.evaluate("window.forged.replies.map((r) => r.error && r.error.name)")
        assert names == ["ValidationError"] * 6
        assert isinstance(leader.evaluate("async () => db.collection('t').create({by: 'leader'})"), str)
        # The follower's own hostile values fail its own calls (the channel copies like postMessage).
        assert follower.evaluate("async () => { window.db = db; return 1; }") == 1
        assert follower.evaluate(NESTED_JS.replace('collection("deep")', 'collection("t")'), [3000]) == [
            ["ValidationError", "accepted"], "ValidationError", "ValidationError", "ValidationError"]
        # A goodbye from a tab that is not the leader does not hold the follower's calls back.
        forger.evaluate("() => forgeChannel.postMessage({t: 'bye', tab: 'forger'})")
        assert isinstance(follower.evaluate("async () => db.collection('t').create({by: 'follower'})"), str)
        assert follower.evaluate("db._engine.epoch") == forger.evaluate("window.forged.leader.epoch")
        # A forged leader announcement: the real leader re-announces, the follower's call goes
        # to it and is answered.
        forger.evaluate("""() => { const l = window.forged.leader;
          forgeChannel.postMessage({...l, tab: "forger", epoch: "f0f0f0f0f0f0f0f0"}); }""")
        follower.wait_for_function("(e) => db._engine.epoch === e", arg=forger.evaluate("window.forged.leader.epoch"))
        assert isinstance(follower.evaluate("async () => db.collection('t').create({by: 'follower'})"), str)
        assert leader.evaluate("async () => db.collection('t').count()") == 4
    finally:
        for p in (follower, leader, forger):
            p.close()
