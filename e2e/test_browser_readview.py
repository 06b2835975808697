"""The materialized read view in Chromium: `Ostracon.peek` (web/readview.js) reads what the
engine wrote (ostracon/runtime/browser/readview.py) without the engine.

- After writes, deletes and a merge of another replica's blocks, peek returns exactly the
  engine's documents (any value type), and never a write that is not durable yet.
- Pages (`limit`, `after` = the previous `next`) add up to the whole view in IndexedDB key
  order; `ids` reads exactly those rows in the order asked; bad options are refused at once.
- A missing database, a view out of step with the records (marker gone), a damaged row or a
  store emptied under its marker: peek says so (docs null) for every read shape, or the engine
  rebuilds the view at its next open; the engine itself always opens.
"""

from __future__ import annotations

import uuid

import pytest

from conftest import goto_e2e

pytestmark = pytest.mark.browser

# Engine and peek results compared as JSON (BigInt and bytes made explicit).
CANON = """(v) => JSON.stringify(v, (_k, x) => typeof x === "bigint" ? `${x}n`
  : x instanceof Uint8Array ? `bytes:${Array.from(x).join(",")}` : x)"""

OPEN = """async ([name, extra]) => {
  window.dbs = window.dbs || {};
  window.progress = {};
  const onProgress = (p) => { (window.progress[name] = window.progress[name] || []).push(p); };
  window.dbs[name] = await Ostracon.open({name, tabs: "exclusive", onProgress, ...(extra || {})});
  return true;
}"""

ENGINE_DOCS = f"""async ([name, col]) => {{
  const canon = {CANON};
  const r = await window.dbs[name].collection(col).scan({{limit: 100000}});
  return canon(r.docs);
}}"""

PEEK = f"""async ([name, col]) => {{
  const canon = {CANON};
  const r = await Ostracon.peek(name, col);
  return {{docs: r.docs === null ? null : canon(r.docs), reason: r.reason, n: r.docs ? r.docs.length : null}};
}}"""

RAW_IDB = """async ([name, action]) => {
  const db = await new Promise((ok, no) => { const r = indexedDB.open("ostracon:" + name);
    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const tx = db.transaction(["meta", "view"], "readwrite");
  const view = tx.objectStore("view"), meta = tx.objectStore("meta");
  if (action === "drop-marker") meta.delete("s/view");
  if (action === "garble-marker") meta.put(new Uint8Array([1, 2, 3]), "s/view");
  if (action === "clear-rows") view.clear();
  if (action === "bad-row") view.openCursor().onsuccess = (ev) => {
    const c = ev.target.result; if (c) c.update({_id: 42, title: {toString: "x"}}); };
  if (action === "foreign-row") view.put({_id: "x", _collection: "other", _deleted: false,
    _version: 1, _heads: []}, ["c", "zzz"]);
  await new Promise((ok, no) => { tx.oncomplete = ok; tx.onabort = () => no(tx.error); });
  db.close();
  return true;
}"""


def fresh_name() -> str:
    return f"rv-{uuid.uuid4().hex[:10]}"


def open_db(page, name: str, **extra) -> None:
    page.evaluate(OPEN, [name, extra])


def close_db(page, name: str) -> None:
    page.evaluate("async (n) => { await window.dbs[n].close(); delete window.dbs[n]; }", name)


def assert_view_matches(page, name: str, col: str) -> dict:
    got = page.evaluate(PEEK, [name, col])
    assert got["reason"] is None, got
    assert got["docs"] == page.evaluate(ENGINE_DOCS, [name, col])
    return got


def test_peek_matches_the_engine_after_writes_and_deletes(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    open_db(page, name)
    page.evaluate("""async (n) => {
      const c = window.dbs[n].collection("c");
      await c.create({title: "text", body: 7}, "a");
      await c.create({title: null, body: {nested: [1, "x", null]}, big: 2n ** 70n, raw: new Uint8Array([0, 255])}, "b");
      await c.create({title: 1.5, tags: ["t"]}, "c");
      await c.patch("a", {body: "now text"});
      await c.delete("c");
      await window.dbs[n].flush();
    }""", name)
    got = assert_view_matches(page, name, "c")
    assert got["n"] == 2
    # A collection with no documents: an empty list, not a failure.
    assert page.evaluate(PEEK, [name, "nothing"]) == {"docs": "[]", "reason": None, "n": 0}
    close_db(page, name)
    assert_view_matches_after_reopen(page, name)


def assert_view_matches_after_reopen(page, name: str) -> None:
    before = page.evaluate(PEEK, [name, "c"])
    open_db(page, name)
    assert page.evaluate(ENGINE_DOCS, [name, "c"]) == before["docs"]
    close_db(page, name)


def test_peek_never_shows_writes_that_are_not_durable(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    # A long sink interval: nothing becomes durable on its own during the test.
    open_db(page, name, sinkIntervalMs=600000, sinkBatchOps=100000)
    page.evaluate("async (n) => { await window.dbs[n].collection('c').create({v: 1}, 'x'); "
                  "await window.dbs[n].flush(); await window.dbs[n].collection('c').patch('x', {v: 2}); "
                  "await window.dbs[n].collection('c').create({v: 3}, 'y'); }", name)
    got = page.evaluate("async (n) => (await Ostracon.peek(n, 'c')).docs.map((d) => [d._id, d.v])", name)
    assert got == [["x", 1]]
    page.evaluate("async (n) => window.dbs[n].flush()", name)
    assert_view_matches(page, name, "c")
    close_db(page, name)


def test_peek_follows_merged_remote_blocks(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    a, b = fresh_name(), fresh_name()
    open_db(page, a)
    open_db(page, b)
    page.evaluate("""async ([a, b]) => {
      const ca = window.dbs[a].collection("c"), cb = window.dbs[b].collection("c");
      await ca.create({from: "a", n: 1}, "shared");
      await cb.create({from: "b"}, "mine");
      await cb.create({from: "b", gone: true}, "gone");
      await cb.delete("gone");
      await window.dbs[a].flush();  // only durable, sealed blocks are offered
      await window.dbs[b].applyBlocks(await window.dbs[a].blocksSince({}));
      await cb.patch("shared", {n: 2});
      await window.dbs[a].collection("c").create({from: "a"}, "later");
      await window.dbs[a].flush();
      await window.dbs[b].applyBlocks(await window.dbs[a].blocksSince(await window.dbs[b].versionVector()));
      await window.dbs[b].flush();
    }""", [a, b])
    got = assert_view_matches(page, b, "c")
    assert got["n"] == 3
    close_db(page, a)
    close_db(page, b)


def test_missing_database_and_missing_view(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    assert page.evaluate(PEEK, [name, "c"]) == {"docs": None, "reason": "missing", "n": None}
    # peek did not create the database: the engine still opens it as new.
    assert name not in page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)")
    assert page.evaluate("async () => (await Ostracon.peek('', 'c')).docs") is None


# Ids whose UTF-16 code-unit order (IndexedDB's, and JS sort's) differs from their code-point
# order and from a locale's: an astral character sorts before U+FFFD in UTF-16.
PAGED_IDS = ["b", "a", "B", "10", "9", "\U0001F600", "\uFFFD", "é", "z-1", "z"]

PAGES = """async ([name, col, limit]) => {
  const pages = [];
  let after = null;
  for (;;) {
    const r = await Ostracon.peek(name, col, {after, limit});
    pages.push({ids: r.docs && r.docs.map((d) => d._id), next: r.next, position: r.position, reason: r.reason});
    if (!r.next || pages.length > 100) return pages;
    after = r.next;
  }
}"""


def write_ids(page, name: str, ids: list[str]) -> None:
    page.evaluate("""async ([n, ids]) => { const c = window.dbs[n].collection('c');
      for (const id of ids) await c.create({id}, id); await window.dbs[n].flush(); }""", [name, ids])


def test_peek_reads_pages_in_key_order(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    open_db(page, name)
    write_ids(page, name, PAGED_IDS)
    key_order = page.evaluate("(ids) => [...ids].sort()", PAGED_IDS)  # UTF-16 code units
    assert key_order != sorted(PAGED_IDS)  # the case is one where the two orders differ
    whole = page.evaluate("async (n) => (await Ostracon.peek(n, 'c')).docs.map((d) => d._id)", name)
    assert whole == key_order
    for limit in (1, 3, len(PAGED_IDS), len(PAGED_IDS) + 1):
        pages = page.evaluate(PAGES, [name, "c", limit])
        assert [i for p in pages for i in p["ids"]] == key_order, (limit, pages)
        assert all(p["reason"] is None and len(p["ids"]) <= limit for p in pages)
        assert len({p["position"] for p in pages}) == 1
        # `next` is the last id of a page that has a successor, and null on the last page.
        assert [p["next"] for p in pages[:-1]] == [p["ids"][-1] for p in pages[:-1]]
        assert pages[-1]["next"] is None and len(pages) == -(-len(PAGED_IDS) // limit)
    close_db(page, name)


def test_peek_reads_ids_in_the_order_asked(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    open_db(page, name)
    write_ids(page, name, PAGED_IDS)
    page.evaluate("async (n) => { await window.dbs[n].collection('c').delete('z'); "
                  "await window.dbs[n].flush(); }", name)
    asked = ["z-1", "missing", "a", "z", "\U0001F600", "a"]
    got = page.evaluate("""async ([n, ids]) => { const r = await Ostracon.peek(n, 'c', {ids});
      return {ids: r.docs.map((d) => d._id), next: r.next, reason: r.reason}; }""", [name, asked])
    # Absent and deleted ids are left out; the rest come in the order asked.
    assert got == {"ids": ["z-1", "a", "\U0001F600", "a"], "next": None, "reason": None}
    assert page.evaluate("async (n) => (await Ostracon.peek(n, 'c', {ids: []})).docs", name) == []
    close_db(page, name)


@pytest.mark.parametrize("opts", [
    {"limit": 0}, {"limit": -1}, {"limit": 2.5}, {"limit": "3"}, {"after": 5}, {"ids": "a"},
    {"ids": [1]}, {"ids": ["a"], "after": "a"}, {"timeoutMs": -1}, "too-many-ids",
])
def test_bad_options_are_refused_without_touching_the_database(shared_page, e2e_url, opts) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    got = page.evaluate("""async ([n, opts]) => {
      const {PEEK_MAX_IDS} = await import("/readview.js");
      if (opts === "too-many-ids") opts = {ids: Array.from({length: PEEK_MAX_IDS + 1}, (_x, i) => `d${i}`)};
      const r = await Ostracon.peek(n, "c", opts);
      return {docs: r.docs, reason: r.reason, dbs: (await indexedDB.databases()).map((d) => d.name)};
    }""", [name, opts])
    assert got["docs"] is None and got["reason"].startswith("unavailable: "), got
    assert "ostracon:" + name not in got["dbs"]


@pytest.mark.parametrize("damage, reason", [
    ("drop-marker", "stale"),
    ("garble-marker", "damaged: the view's marker is malformed"),
    ("bad-row", "damaged: "),
    ("foreign-row", "damaged: "),
])
def test_damaged_view_falls_back_to_the_engine(shared_page, e2e_url, damage: str, reason: str) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    open_db(page, name)
    page.evaluate("async (n) => { const c = window.dbs[n].collection('c'); "
                  "await c.create({t: 'one'}, 'a'); await c.create({t: 'two'}, 'b'); await window.dbs[n].flush(); }",
                  name)
    close_db(page, name)
    page.evaluate(RAW_IDB, [name, damage])
    got = page.evaluate(PEEK, [name, "c"])
    assert got["docs"] is None and got["reason"].startswith(reason), got
    # Paging through the view meets the damage and refuses that page; so does reading by id.
    pages = page.evaluate(PAGES, [name, "c", 1])
    assert pages[-1]["ids"] is None and pages[-1]["reason"].startswith(reason), pages
    got = page.evaluate("async (n) => { const r = await Ostracon.peek(n, 'c', {ids: ['a', 'b', 'zzz']}); "
                        "return {docs: r.docs, reason: r.reason}; }", name)
    assert got["docs"] is None and got["reason"].startswith(reason), got
    # The engine opens regardless; a page rebuilds the view it found damaged.
    open_db(page, name)
    assert page.evaluate("async (n) => (await window.dbs[n].collection('c').count())", name) == 2
    assert page.evaluate("async (n) => window.dbs[n].rebuildView()", name) == 2
    assert_view_matches(page, name, "c")
    close_db(page, name)


def test_engine_rebuilds_a_view_out_of_step_at_open(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    open_db(page, name)
    page.evaluate("async (n) => { const c = window.dbs[n].collection('c'); "
                  "for (let i = 0; i < 5; i++) await c.create({i}, `d${i}`); await window.dbs[n].flush(); }", name)
    close_db(page, name)
    for damage in ("clear-rows", "drop-marker"):
        page.evaluate(RAW_IDB, [name, damage])
        open_db(page, name)  # no rebuildView(): the open itself repairs the view
        got = assert_view_matches(page, name, "c")
        assert got["n"] == 5
        close_db(page, name)


def test_a_compacted_store_reopens_from_its_snapshot_with_the_same_view(shared_page, e2e_url) -> None:
    page = shared_page
    goto_e2e(page, e2e_url)
    name = fresh_name()
    open_db(page, name)
    before = page.evaluate("""async (n) => {
      const db = window.dbs[n], c = db.collection("c");
      const docs = []; for (let i = 0; i < 1100; i++) docs.push({i, s: `v${i}`});
      await c.createMany(docs.slice(0, 550));   // a createMany is atomic: at most 1000
      await c.createMany(docs.slice(550));
      await c.delete((await c.scan({limit: 1})).docs[0]._id);
      await db.flush();
      await db._call("tick");  // the idle tick compacts the long log into a snapshot
      return {hash: await db.stateHash(), count: await c.count()};
    }""", name)
    assert before["count"] == 1099
    peeked = assert_view_matches(page, name, "c")
    close_db(page, name)
    open_db(page, name)
    replay = page.evaluate("(n) => window.progress[n].find((p) => p.phase === 'replay').detail", name)
    assert replay["snapshot"] > 1100 and replay["records"] < 10, replay  # a snapshot, not the log
    assert "view" not in page.evaluate("(n) => window.progress[n].map((p) => p.phase)", name)  # kept, not rebuilt
    assert page.evaluate(PEEK, [name, "c"]) == peeked
    info = page.evaluate("async (n) => { const db = window.dbs[n]; return {hash: await db.stateHash(), "
                         "count: await db.collection('c').count()}; }", name)
    assert (info["hash"], info["count"]) == (before["hash"], before["count"])
    page.evaluate("async (n) => { await window.dbs[n].collection('c').create({late: true}, 'late'); "
                  "await window.dbs[n].flush(); }", name)
    assert_view_matches(page, name, "c")
    close_db(page, name)


def opened_fresh(page, e2e_url: str) -> str:
    """A new database opened on a freshly loaded page; its name."""
    goto_e2e(page, e2e_url)
    name = fresh_name()
    open_db(page, name)
    return name


def test_rows_of_size_triggered_batches_follow_at_the_idle_tick(shared_page, e2e_url) -> None:
    """Batches the sink writes on its own (the size trigger, which the worker's idle tick
    takes: docs/BROWSER.md) carry no rows: the view lags, and peek says "stale" rather than
    showing anything the records do not hold; two idle ticks with no write between them catch
    it up (in steps), without an explicit flush."""
    page = shared_page
    name = opened_fresh(page, e2e_url)
    page.evaluate("""async (n) => { const c = window.dbs[n].collection("c");
      await c.create({first: true}, "a0"); await window.dbs[n].flush(); }""", name)
    durable = page.evaluate(PEEK, [name, "c"])
    assert durable["n"] == 1
    page.evaluate("""async (n) => { const c = window.dbs[n].collection("c");
      const docs = []; for (let i = 0; i < 1250; i++) docs.push({i, s: `v${i}`, neg: -0, big: 2n ** 70n});
      for (let i = 0; i < docs.length; i += 500) await c.createMany(docs.slice(i, i + 500));
      await window.dbs[n]._call("tick"); }""", name)  # the size trigger: records, no rows
    lagging = page.evaluate(PEEK, [name, "c"])
    # Either the idle tick has already caught up (then exactly the engine's documents), or
    # the view says it is stale: never a view that claims the new records without their rows.
    assert lagging["reason"] == "stale" or lagging["docs"] == page.evaluate(ENGINE_DOCS, [name, "c"]), lagging
    page.evaluate("async (n) => { await window.dbs[n]._call('tick'); await window.dbs[n]._call('tick'); }", name)
    got = assert_view_matches(page, name, "c")
    assert got["n"] == 1251
    close_db(page, name)
    open_db(page, name)
    assert "view" not in page.evaluate("(n) => window.progress[n].map((p) => p.phase)", name)  # kept, not rebuilt
    assert page.evaluate(PEEK, [name, "c"]) == got
    close_db(page, name)


def test_close_writes_the_pending_rows(shared_page, e2e_url) -> None:
    page = shared_page
    name = opened_fresh(page, e2e_url)
    engine = page.evaluate("""async (n) => { const c = window.dbs[n].collection("c");
      const docs = []; for (let i = 0; i < 230; i++) docs.push({i});
      await c.createMany(docs); await c.patch((await c.scan({limit: 1})).docs[0]._id, {i: -1});
      const r = await c.scan({limit: 100000}); return r.docs.length; }""", name)
    expected = page.evaluate(ENGINE_DOCS, [name, "c"])
    close_db(page, name)
    got = page.evaluate(PEEK, [name, "c"])
    assert got["reason"] is None and got["n"] == engine and got["docs"] == expected
