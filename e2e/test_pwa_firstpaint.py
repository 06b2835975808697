"""Ostracon Notes paints stored notes from the read view before the engine is ready
(web/demo/firstpaint.js), against `ostracon serve`:
- after a reload the list is painted from the view first, then replaced by live data; the
  order is checked through the app's event timeline, not through timings; a deleted note is
  never painted; values of any type render;
- a damaged view is not painted: the app waits for the engine, which rewrites the view for the
  next visit.
"""

from __future__ import annotations

from test_pwa import make_app, new_space, server, wait_js, web_dir  # noqa: F401 (fixtures)

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


def events(app) -> list[str]:
    return app.page.evaluate(TIMELINE)


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
