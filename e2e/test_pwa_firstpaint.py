"""Ostracon Notes paints stored notes from the read view before the engine is ready
(web/demo/firstpaint.js), against `ostracon serve`:
- after a reload the list is painted from the view first, then replaced by live data; the
  order is checked through the app's event timeline, not through timings; a deleted note is
  never painted; values of any type render;
- the first screen is the remembered one (read by id) and its order is the live order, so the
  swap moves nothing; without a remembered first screen the whole view is painted, in the live
  order too;
- the first screen's read is the one web/demo/early.js starts at page load, not a second one:
  in the built page its inline copy (a classic script, wasm-build/inline.py), which the served
  Content-Security-Policy allows by its hash and nothing looser; with the hash missing from the
  policy the browser refuses the inline copy and the page still paints (the module starts the
  read); a visit served offline by the service worker starts it inline too;
- the rest of the list fills in from the view in pages until every stored note is in;
- a damaged view is not painted: the app waits for the engine, which rewrites the view for the
  next visit; so does a page without IndexedDB (the engine's worker still has it), and a
  tampered remembered first screen is ignored (the whole view is read).
"""

from __future__ import annotations

import json
import shutil

from notes_app import BOOT_TIMEOUT_MS, Server, make_app, new_space, server, wait_js, web_dir  # noqa: F401 (fixtures)

TIMELINE = "window.__notes.timeline.map((e) => e.event)"
DAMAGE_ROW = """async (name) => {
  const db = await new Promise((ok, no) => { const r = indexedDB.open("ostracon:" + name);
    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const tx = db.transaction(["view"], "readwrite");
  tx.objectStore("view").openCursor().onsuccess = (ev) => {
    const c = ev.target.result; if (c) c.update({_id: 1, title: "forged"}); };
  await new Promise((ok, no) => { tx.oncomplete = ok; tx.onabort = () => no(tx.error); });
  db.close();
}"""


SHOWN = "[...document.querySelectorAll('#notes .note-item')].map((b) => b.dataset.id)"
FIRST_PAINT = "window.__notes.timeline.find((e) => e.event === 'firstpaint')"
PEEK = "window.__notes.timeline.find((e) => e.event === 'peek')"
# Notes written through the app's engine: {title, body, touched: [i…], pinned: [i…]} → ids.
WRITE = """async ([n, touched, pinned]) => {
  const c = window.__notes.state.db.collection("notes");
  const ids = [];
  for (let b = 0; b < n; b += 500) {
    const batch = [];
    for (let i = b; i < Math.min(n, b + 500); i++) batch.push({title: `note ${i}`, body: `body ${i}`});
    ids.push(...(await c.createMany(batch)));
  }
  for (const i of touched) await c.patch(ids[i], {body: `edited ${i}`});
  for (const i of pinned) await c.patch(ids[i], {pinned: true});
  await window.__notes.state.db.flush();
  return ids;
}"""


def events(app) -> list[str]:
    return app.page.evaluate(TIMELINE)


def first_paint_constant(app, name: str) -> int:
    return app.page.evaluate("async (k) => (await import('./firstpaint.js'))[k]", name)


def stored_app(browser, server, n, touched=(), pinned=()):  # noqa: F811
    """A context and an app whose space holds `n` notes (some edited later, some pinned); `n`
    may be a function of the app, e.g. of a constant of its modules."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    app = make_app(ctx, server.url)
    app.create(new_space())
    n = n(app) if callable(n) else n
    ids = app.page.evaluate(WRITE, [n, [i % n for i in touched], [i % n for i in pinned]])
    # Every write is in the list: the edits and pins too (their change events come after the
    # creates), and the rows are drawn in the list's order.
    wait_js(app.page, """async ([n, edited, pinned]) => {
      const s = window.__notes.state.notes;
      if (s.size !== n || !edited.every((id) => s.get(id)._version >= 2)
          || !pinned.every((id) => s.get(id).pinned === true)) return false;
      const { compareNotes } = await import("./format.js");
      const want = [...s.values()].sort(compareNotes("updated")).map((d) => d._id);
      const shown = [...document.querySelectorAll("#notes .note-item")].map((b) => b.dataset.id);
      return shown.length > 0 && shown.every((id, i) => id === want[i]); }""",
            arg=[n, [ids[i % n] for i in touched], [ids[i % n] for i in pinned]])
    return ctx, app, ids


def test_reload_paints_stored_notes_before_the_engine_is_ready(browser, server):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    app = make_app(ctx, server.url)
    app.create(new_space())
    app.new_note("Groceries", "milk")
    app.new_note("Gone soon", "x")
    app.page.evaluate("""async () => { const c = window.__notes.state.db.collection("notes");
      await c.create({title: 7, body: 42, tags: "not-a-list", pinned: null}, "numbers");
      await c.create({title: null, body: {nested: [1, 2.5, null]}, raw: new Uint8Array([1, 2])}, "maps");
      const gone = [...window.__notes.state.notes.values()].find((d) => d.title === "Gone soon");
      await c.delete(gone._id);
      await window.__notes.state.db.flush(); }""")
    wait_js(app.page, "window.__notes.state.notes.size === 3")
    live_ids = sorted(app.page.evaluate("[...window.__notes.state.notes.keys()]"))

    app.page.reload()
    wait_js(app.page, "(window.__notes.timeline || []).some((e) => e.event === 'firstpaint')")
    # Painted from the view: the engine may still be loading (checked below by order).
    assert sorted(app.page.evaluate(
        "[...document.querySelectorAll('.note-item')].map((b) => b.dataset.id)")) == live_ids
    assert "42" in app.page.inner_text(".note-item[data-id='numbers']")
    app.wait_ready()
    ev = events(app)
    assert ev.index("firstpaint") < ev.index("ready"), ev
    painted = app.page.evaluate("window.__notes.timeline.find((e) => e.event === 'firstpaint').ids")
    assert sorted(painted) == live_ids  # the deleted note was never painted
    assert sorted(app.page.evaluate("[...window.__notes.state.notes.keys()]")) == live_ids
    assert app.page.evaluate("document.getElementById('app').inert") is False
    assert app.errors == []
    ctx.close()


def test_a_damaged_view_is_not_painted_and_is_rewritten(browser, server):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    app = make_app(ctx, server.url)
    app.create(new_space())
    app.new_note("One", "1")
    app.new_note("Two", "2")
    app.page.evaluate("window.__notes.state.db.flush()")
    name = app.page.evaluate("window.__notes.state.db.info.name")
    app.page.evaluate(DAMAGE_ROW, name)

    app.page.reload()
    app.wait_ready()
    ev = events(app)
    assert "firstpaint" not in ev, ev
    peek = app.page.evaluate("window.__notes.timeline.find((e) => e.event === 'peek')")
    assert peek["reason"].startswith("damaged"), peek
    assert sorted(app.titles()) == ["One", "Two"]
    # The app asked the engine to rewrite the view: the next visit paints from it again.
    wait_js(app.page, """(async () => { const m = await import("/ostracon.js");
      return (await m.default.peek(window.__notes.state.db.info.name, "notes")).docs !== null; })()""")
    app.page.reload()
    app.wait_ready()
    ev = events(app)
    assert ev.index("firstpaint") < ev.index("ready"), ev
    assert app.errors == []
    ctx.close()


def test_the_first_screen_is_the_live_first_screen(browser, server):  # noqa: F811
    # Edited and pinned notes lead the live order; the view's key order (by id) differs.
    ctx, app, ids = stored_app(browser, server, 120, touched=(3, 70, 110), pinned=(90,))
    live = app.page.evaluate(SHOWN)
    assert live[:4] == [ids[90], ids[110], ids[70], ids[3]], live[:4]
    assert live != sorted(live)
    app.page.reload()
    wait_js(app.page, f"!!({FIRST_PAINT})")
    painted = app.page.evaluate(FIRST_PAINT)
    peek = app.page.evaluate(PEEK)
    assert peek["hinted"] is True and peek["reason"] is None and peek["early"] is True, peek
    first_screen = first_paint_constant(app, "FIRST_SCREEN_ROWS")
    assert painted["count"] == first_screen < len(ids)
    assert painted["ids"] == live[:first_screen]
    app.wait_ready()
    assert app.page.evaluate(SHOWN)[:first_screen] == painted["ids"]  # the swap moved nothing
    assert app.page.evaluate(SHOWN) == live
    assert app.errors == []
    ctx.close()


def test_without_a_remembered_first_screen_the_whole_view_is_painted_in_order(browser, server):  # noqa: F811
    ctx, app, ids = stored_app(browser, server, 50, touched=(1, 30), pinned=(40,))
    live = app.page.evaluate(SHOWN)
    name = app.page.evaluate("window.__notes.state.db.info.name")
    app.page.evaluate("(n) => localStorage.removeItem('ostracon-notes/first-screen/' + n)", name)
    app.page.reload()
    wait_js(app.page, f"!!({FIRST_PAINT})")
    assert app.page.evaluate(PEEK)["hinted"] is False
    painted = app.page.evaluate(FIRST_PAINT)
    assert painted["ids"] == live and painted["count"] == len(ids)
    app.wait_ready()
    assert app.page.evaluate(SHOWN) == live
    # Showing live data remembered the first screen again; leaving the space forgets it.
    remembered = "(n) => localStorage.getItem('ostracon-notes/first-screen/' + n) !== null"
    assert app.page.evaluate(remembered, name)
    app.page.click("#space-btn")
    app.page.click("#leave")
    app.page.wait_for_selector("#join:not([hidden])")
    assert not app.page.evaluate(remembered, name)
    assert app.errors == []
    ctx.close()


def test_the_rest_of_the_list_fills_in_from_the_view(browser, server):  # noqa: F811
    # Filling races the engine in the app, so it is run here by itself (no live() call), with
    # the app's own order and modules, and pages small enough that the notes span several.
    page_rows = 7
    ctx, app, ids = stored_app(browser, server, 3 * page_rows + 2, touched=(2, -3), pinned=(5,))
    live = app.page.evaluate(SHOWN)
    got = app.page.evaluate("""async (pageRows) => {
      const fp = await import("./firstpaint.js");
      const lv = await import("./listview.js");
      const name = window.__notes.state.db.info.name;
      const out = {pages: [], lasts: []};
      const run = fp.firstPaint(name, "notes", {sort: "updated", compare: lv.compareNotes("updated"), pageRows,
        paint: (docs) => { out.painted = docs.map((d) => d._id); },
        fill: (docs, last) => { out.pages.push(docs.map((d) => d._id)); out.lasts.push(last); }});
      await run.filled;
      return out;
    }""", page_rows)
    assert got["painted"] == live
    assert [len(p) for p in got["pages"]] == [page_rows] * 3 + [2]
    assert got["lasts"] == [False, False, False, True]
    filled = [i for page in got["pages"] for i in page]
    assert filled == sorted(filled)  # pages come in key order, one after the other
    assert sorted(filled) == sorted(ids) == sorted(live)
    assert app.errors == []
    ctx.close()


def test_without_indexeddb_in_the_page_the_app_waits_for_the_engine(browser, server):  # noqa: F811
    ctx, app, ids = stored_app(browser, server, 5)
    # The page's IndexedDB refuses (as in some private modes); the engine runs in its worker.
    ctx.add_init_script("""Object.defineProperty(window, "indexedDB", {configurable: true,
      get() { throw new DOMException("refused by the test", "SecurityError"); }});""")
    app.page.reload()
    app.wait_ready()
    peek = app.page.evaluate(PEEK)
    assert peek["early"] is True and peek["count"] is None, peek
    assert peek["reason"] == "unavailable: SecurityError", peek
    assert "firstpaint" not in events(app)
    assert sorted(app.page.evaluate(SHOWN)) == sorted(ids)
    assert app.errors == []
    ctx.close()


def test_a_tampered_first_screen_is_ignored(browser, server):  # noqa: F811
    ctx, app, ids = stored_app(browser, server, 12, touched=(4,))
    live = app.page.evaluate(SHOWN)
    name = app.page.evaluate("window.__notes.state.db.info.name")
    # Longer than a first screen, and ids that are not strings: neither is used.
    for hint in ({"sort": "updated", "ids": ["x"] * 5000}, {"sort": "updated", "ids": [1, 2]}, "{"):
        app.page.evaluate("""([n, h]) => localStorage.setItem("ostracon-notes/first-screen/" + n,
          typeof h === "string" ? h : JSON.stringify(h))""", [name, hint])
        app.page.reload()
        wait_js(app.page, f"!!({FIRST_PAINT})")
        peek = app.page.evaluate(PEEK)
        assert peek["hinted"] is False and peek["early"] is True, (hint, peek)
        assert app.page.evaluate(FIRST_PAINT)["ids"] == live
        app.wait_ready()
        # Live data remembers a sound first screen again (before the next round replaces it).
        wait_js(app.page, """(n) => { const h = JSON.parse(localStorage.getItem("ostracon-notes/first-screen/" + n));
          return Array.isArray(h.ids) && h.ids.length < 5000 && h.ids.every((i) => typeof i === "string"); }""",
                arg=name)
    assert app.errors == []
    ctx.close()


# Collects the page's CSP violations (the init script runs through DevTools, outside the CSP).
CSP_LOG = """document.addEventListener("securitypolicyviolation", (e) =>
  (window.__csp = window.__csp || []).push(`${e.violatedDirective} ${e.blockedURI}`));"""
PAINTED = "(window.__notes.timeline || []).some((e) => e.event === 'firstpaint')"


def reload_painted(app) -> dict:
    """Reload the app and wait for the first paint; the peek event."""
    app.page.reload()
    wait_js(app.page, PAINTED)
    return app.page.evaluate(PEEK)


def test_the_early_read_is_inline_and_allowed_by_its_csp_hash(browser, server, web_dir):  # noqa: F811
    ctx, app, ids = stored_app(browser, server, 8, touched=(2,))
    app.page.add_init_script(CSP_LOG)
    resp = app.page.goto(server.url + "/demo/")
    csp = resp.headers["content-security-policy"]
    hashes = json.loads((web_dir / "build-info.json").read_text())["csp_script_hashes"]
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src "))
    assert script_src == "script-src 'self' 'wasm-unsafe-eval' " + " ".join(hashes) and len(hashes) == 2
    assert "unsafe-inline" not in csp
    # The page's two inline scripts (early.js, firstscreen.js) are the ones the hashes name.
    assert app.page.evaluate("document.querySelectorAll('script:not([src])').length") == 2
    wait_js(app.page, PAINTED)
    peek = app.page.evaluate(PEEK)
    assert peek["inline"] is True and peek["early"] is True and peek["count"] == 8, peek
    # One read: the module file adopted the inline copy's read (the slot is empty again).
    assert app.page.evaluate("'__ostraconNotesEarlyRead' in globalThis") is False
    app.wait_ready()
    assert app.page.evaluate("window.__csp || []") == []
    assert app.errors == []
    ctx.close()


def test_without_its_hash_in_the_policy_the_inline_read_is_refused_and_the_page_still_paints(
        browser, tmp_path, web_dir):  # noqa: F811
    web = tmp_path / "web"
    shutil.copytree(web_dir, web)
    info = json.loads((web / "build-info.json").read_text())
    info["csp_script_hashes"] = []
    (web / "build-info.json").write_text(json.dumps(info))
    (tmp_path / "data").mkdir()
    srv = Server(web, tmp_path / "data")
    srv.start()
    try:
        ctx, app, ids = stored_app(browser, srv, 6)
        app.page.add_init_script(CSP_LOG)
        peek = reload_painted(app)
        assert peek["inline"] is False and peek["early"] is True and peek["count"] == 6, peek
        assert app.page.evaluate(FIRST_PAINT)["ids"] == app.page.evaluate(SHOWN)[:6]
        assert any(v.startswith("script-src") and v.endswith(" inline") for v in app.page.evaluate("window.__csp"))
        app.wait_ready()
        assert app.errors == []
        ctx.close()
    finally:
        srv.stop()


def test_a_visit_served_offline_by_the_service_worker_paints_from_the_inline_read(browser, server):  # noqa: F811
    ctx, app, ids = stored_app(browser, server, 5)
    wait_js(app.page, "navigator.serviceWorker.controller !== null || window.__notes.swReady", timeout=BOOT_TIMEOUT_MS)
    app.page.evaluate("navigator.serviceWorker.ready")
    app.page.add_init_script(CSP_LOG)
    server.stop()
    ctx.set_offline(True)
    peek = reload_painted(app)
    assert app.page.evaluate("navigator.serviceWorker.controller !== null")
    assert peek["inline"] is True and peek["count"] == 5, peek
    assert sorted(app.page.evaluate(SHOWN)) == sorted(ids)
    app.wait_ready()
    assert app.page.evaluate("window.__csp || []") == []
    assert app.errors == []
    ctx.close()
