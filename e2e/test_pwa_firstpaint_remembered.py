"""Ostracon Notes draws the remembered first screen while the page is parsed
(web/demo/firstscreen.js, remembered.js), against `ostracon serve`:
- the rows the app remembered when it showed live data are drawn from localStorage alone: with
  the page's IndexedDB refused and every script file of the page failing to load, the first
  screen is there, and its rows are exactly the live rows (same elements and text);
- then the read view's paint and live data replace them in the same order; a stale remembered
  screen (other titles, another order, markup as text) is drawn as text and corrected within
  the same page load;
- a remembered entry that is malformed, oversized or wrongly typed draws nothing and the page
  paints from the read view as without it;
- a space locked by a passphrase never has rows remembered, and planted ones are not drawn;
- a visit served offline by the service worker draws them too, with no CSP violation.
"""

from __future__ import annotations

import json

from notes_app import BOOT_TIMEOUT_MS, make_app, new_space, server, wait_js, web_dir  # noqa: F401 (fixtures)
from test_pwa_firstpaint import CSP_LOG, FIRST_PAINT, SHOWN, stored_app

KEY = "ostracon-notes/first-screen/"
EVENTS = "window.__notes.timeline.map((e) => e.event)"
REMEMBERED = "window.__notes.timeline.find((e) => e.event === 'remembered')"
# Records, when firstscreen.js fills its slot, the list's rows as drawn at that moment.
SNAPSHOT_AT_DRAW = """Object.defineProperty(window, "__ostraconNotesRemembered", {configurable: true,
  get() { return window.__slot; },
  set(v) { window.__slot = v; window.__drawn = {count: v.count, ids: v.ids,
    rows: [...document.querySelectorAll("#notes .note-item")].map((b) => b.outerHTML),
    images: document.querySelectorAll("#notes img").length,
    titles: [...document.querySelectorAll("#notes .note-title")].map((t) => t.textContent),
    modulesRan: window.__notes !== undefined}; }});"""
ROWS_HTML = "[...document.querySelectorAll('#notes .note-item')].map((b) => b.outerHTML)"
# Notes with every part of a row: done, tags, a pin, a long body.
DECORATE = """async (ids) => {
  const c = window.__notes.state.db.collection("notes");
  await c.patch(ids[0], {done: true, tags: ["work", "later"], body: "x".repeat(400)});
  await c.patch(ids[1], {pinned: true, title: "t".repeat(300)});
  await window.__notes.state.db.flush();
}"""
LIVE_SETTLED = """(ids) => { const s = window.__notes.state.notes;
  return s.get(ids[0]).done === true && s.get(ids[1]).pinned === true
    && document.querySelector("#notes .note-item").dataset.id === ids[1]; }"""


def entry(app, name: str) -> dict | None:
    return json.loads(app.page.evaluate("(k) => localStorage.getItem(k)", KEY + name) or "null")


def remembered_app(browser, server, n):  # noqa: F811
    """An app whose space holds `n` notes, two of them done/tagged/pinned, whose first screen
    (with rows) is remembered: (ctx, app, ids, name, live rows' HTML)."""
    ctx, app, ids = stored_app(browser, server, n)
    app.page.evaluate(DECORATE, ids)
    wait_js(app.page, LIVE_SETTLED, arg=ids)
    name = app.page.evaluate("window.__notes.state.db.info.name")
    wait_js(app.page, "(k) => { const h = JSON.parse(localStorage.getItem(k) || 'null'); return !!(h && h.rows); }",
            arg=KEY + name)
    return ctx, app, ids, name, app.page.evaluate(ROWS_HTML)


def test_remembered_rows_are_drawn_without_indexeddb_or_a_module(browser, server):  # noqa: F811
    ctx, app, ids, name, live_rows = remembered_app(browser, server, 60)
    live = app.page.evaluate(SHOWN)
    rows = entry(app, name)["rows"]
    first_screen = len(rows)
    assert first_screen == len(entry(app, name)["ids"]) < len(ids)
    assert len(rows[0]["snippet"]) <= 140 and len(rows[1]["title"]) <= 200  # cut to what a row shows
    ctx.add_init_script(SNAPSHOT_AT_DRAW)
    ctx.add_init_script("""Object.defineProperty(window, "indexedDB", {configurable: true,
      get() { throw new DOMException("refused by the test", "SecurityError"); }});""")
    app.page.reload()
    drawn = wait_js(app.page, "window.__drawn")
    # Drawn while the page was parsed: before any of its modules ran (state.js creates
    # window.__notes), with the page's IndexedDB refused.
    assert drawn["modulesRan"] is False
    assert drawn["count"] == first_screen and drawn["ids"] == live[:first_screen]
    # Exactly the live first screen: the same rows, element for element.
    assert drawn["rows"] == live_rows[:first_screen]
    app.wait_ready()
    peek = app.page.evaluate("window.__notes.timeline.find((e) => e.event === 'peek')")
    assert peek["reason"] == "unavailable: SecurityError", peek
    assert app.page.evaluate(SHOWN) == live
    assert app.errors == []
    ctx.close()


def test_remembered_rows_are_replaced_in_the_same_order_by_the_view_and_live_data(browser, server):  # noqa: F811
    ctx, app, ids, name, live_rows = remembered_app(browser, server, 50)
    live = app.page.evaluate(SHOWN)
    ctx.add_init_script(SNAPSHOT_AT_DRAW)
    app.page.reload()
    app.wait_ready()
    drawn = app.page.evaluate("window.__drawn")
    ev = app.page.evaluate(EVENTS)
    assert ev.index("remembered") < ev.index("firstpaint") < ev.index("ready"), ev
    assert app.page.evaluate(REMEMBERED)["ids"] == drawn["ids"] == live[:drawn["count"]]
    assert app.page.evaluate(FIRST_PAINT)["ids"][:drawn["count"]] == drawn["ids"]
    assert app.page.evaluate(SHOWN) == live
    assert app.page.evaluate(ROWS_HTML) == live_rows
    assert app.page.evaluate("document.getElementById('app').inert") is False
    assert app.errors == []
    ctx.close()


def test_a_stale_remembered_screen_is_drawn_as_text_and_corrected(browser, server):  # noqa: F811
    ctx, app, ids, name, live_rows = remembered_app(browser, server, 12)
    live = app.page.evaluate(SHOWN)
    stale = entry(app, name)
    stale["ids"].reverse()
    stale["rows"].reverse()
    for r in stale["rows"]:
        r["title"] = '<img src="x">stale'
    app.page.evaluate("([k, v]) => localStorage.setItem(k, v)", [KEY + name, json.dumps(stale)])
    ctx.add_init_script(SNAPSHOT_AT_DRAW)
    app.page.reload()
    drawn = wait_js(app.page, "window.__drawn")
    assert drawn["ids"] == stale["ids"] and drawn["images"] == 0
    assert set(drawn["titles"]) == {'<img src="x">stale'}
    wait_js(app.page, f"!!({FIRST_PAINT})")
    assert app.page.evaluate(FIRST_PAINT)["ids"] == live
    titles = app.page.evaluate("[...document.querySelectorAll('.note-title')].map((t) => t.textContent)")
    assert not any("stale" in t for t in titles), titles
    app.wait_ready()
    assert app.page.evaluate(SHOWN) == live and app.page.evaluate(ROWS_HTML) == live_rows
    # Live data remembered the true first screen again.
    wait_js(app.page, "([k, id]) => JSON.parse(localStorage.getItem(k)).ids[0] === id", arg=[KEY + name, live[0]])
    assert app.errors == []
    ctx.close()


# Ways a remembered entry can be wrong (JS, from the sound entry `h` and remembered.js's
# limits `L`); none is drawn.
HOSTILE = {
    "not JSON": "() => '{'",
    "a title that is a number": "(h) => { h.rows[0].title = 7; return h; }",
    "a title longer than a row shows": "(h, L) => { h.rows[0].title = 't'.repeat(L.ROW_TITLE_CHARS + 1); return h; }",
    "pinned that is not a boolean": "(h) => { h.rows[0].pinned = 'yes'; return h; }",
    "a row that is an array": "(h) => { h.rows[0] = []; return h; }",
    "more rows than ids": "(h) => { h.rows.push(h.rows[0]); return h; }",
    "rows that are not a list": "(h) => { h.rows = 'rows'; return h; }",
    "the same id twice": "(h) => { h.ids[1] = h.ids[0]; return h; }",
    "more rows than a first screen": """(h, L) => { while (h.ids.length <= L.FIRST_SCREEN_ROWS) {
      h.ids.push("x" + h.ids.length); h.rows.push(h.rows[0]); } return h; }""",
    "an entry over the size limit": "(h, L) => { h.padding = 'p'.repeat(L.MAX_FIRST_SCREEN_CHARS); return h; }",
    "another sort": "(h) => { h.sort = 'title'; return h; }",
}


def test_a_malformed_remembered_screen_is_ignored_and_the_view_paints(browser, server):  # noqa: F811
    ctx, app, ids, name, live_rows = remembered_app(browser, server, 8)
    live = app.page.evaluate(SHOWN)
    sound = entry(app, name)
    ctx.add_init_script(SNAPSHOT_AT_DRAW)
    for why, spoil in HOSTILE.items():
        app.page.evaluate(f"""async ([k, h]) => {{ const v = ({spoil})(h, await import("./remembered.js"));
          localStorage.setItem(k, typeof v === "string" ? v : JSON.stringify(v)); }}""", [KEY + name, sound])
        app.page.reload()
        wait_js(app.page, f"!!({FIRST_PAINT})")
        assert app.page.evaluate("window.__drawn === undefined"), why
        assert "remembered" not in app.page.evaluate(EVENTS), why
        assert app.page.evaluate(FIRST_PAINT)["ids"] == live, why
        app.wait_ready()
        assert app.page.evaluate(SHOWN) == live, why
        wait_js(app.page, "([k, v]) => localStorage.getItem(k) === JSON.stringify(v)", arg=[KEY + name, sound])
    assert app.errors == []
    ctx.close()


PLANT_ROWS = """async (k) => { const { displayRow } = await import("./format.js");
  const { compareNotes } = await import("./format.js");
  const docs = [...window.__notes.state.notes.values()].sort(compareNotes("updated"));
  const rows = docs.map(displayRow);
  localStorage.setItem(k, JSON.stringify({sort: "updated", ids: rows.map((r) => r.id),
    rows: rows.map(({id, ...r}) => r)})); }"""


def test_a_locked_space_never_remembers_rows(browser, server):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    app = make_app(ctx, server.url)
    app.create(new_space(), passphrase="correct horse battery")
    app.new_note("Secret", "kept at rest behind the passphrase")
    name = app.page.evaluate("window.__notes.state.db.info.name")
    wait_js(app.page, "(k) => localStorage.getItem(k) !== null", arg=KEY + name)
    h = entry(app, name)
    assert "rows" not in h and len(h["ids"]) == 1
    assert "Secret" not in json.dumps(dict(app.page.evaluate("({...localStorage})")))
    # Rows planted for it are not drawn either: the page asks for the passphrase.
    app.page.evaluate(PLANT_ROWS, KEY + name)
    ctx.add_init_script(SNAPSHOT_AT_DRAW)
    app.page.reload()
    app.page.wait_for_selector("#unlock-space:not([hidden])")
    assert app.page.evaluate("window.__drawn === undefined")
    assert app.page.evaluate("document.getElementById('app').hidden") is True
    assert app.page.evaluate("document.querySelectorAll('#notes .note-item').length") == 0
    assert app.errors == []
    ctx.close()


def test_a_visit_served_offline_by_the_service_worker_draws_the_remembered_rows(browser, server):  # noqa: F811
    ctx, app, ids, name, live_rows = remembered_app(browser, server, 5)
    wait_js(app.page, "navigator.serviceWorker.controller !== null || window.__notes.swReady", timeout=BOOT_TIMEOUT_MS)
    app.page.evaluate("navigator.serviceWorker.ready")
    app.page.add_init_script(CSP_LOG)
    server.stop()
    ctx.set_offline(True)
    app.page.reload()
    wait_js(app.page, f"!!({REMEMBERED})")
    assert app.page.evaluate("navigator.serviceWorker.controller !== null")
    assert app.page.evaluate(REMEMBERED)["count"] == 5
    app.wait_ready()
    assert app.page.evaluate(SHOWN) == app.page.evaluate(REMEMBERED)["ids"]
    assert app.page.evaluate("window.__csp || []") == []
    assert app.errors == []
    ctx.close()
