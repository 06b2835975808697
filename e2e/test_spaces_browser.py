"""Space membership in Chromium beside a native device, through a real relay process
(docs/CRYPTO.md "Membership", the JS API in web/ostracon.js).

A native admin creates a random space and invites the Chromium device as a writer; both sync;
the admin removes it: the key rotates, the Chromium device learns it was removed, reads nothing
written afterwards and nothing it writes is accepted. A reader invite cannot write (every
replica refuses its blocks), and an invite of another space than the one a browser database
keeps rejects with WrongKeyError. The native device runs its own event loop in a thread (the
Playwright sync API owns the test thread's loop); waits poll with tests/polling.py and only
guard against hangs.

The Notes PWA (web/demo/members.js) runs the same flow by its buttons: invite a device from the
space dialog, remove it there, and the removed device says so and gets nothing new; an old
passphrase space keeps opening and moves to a member space only when asked.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import ostracon
from conftest import goto_e2e
from notes_app import SYNC_TIMEOUT_MS, make_app, new_space, server, wait_js, web_dir  # noqa: F401 - fixtures
from ostracon.crypto.space import Space
from ostracon.sync.native import start_sync
from polling import wait_until
from test_browser_sync import FAST, relay_url  # noqa: F401 - the relay process fixture

DEADLINE_S = 60.0

OPEN = """async ([name, space, relay, fast]) => {
  window.db = await Ostracon.open({name, space, relay, sync: fast, tabs: "exclusive"});
  return db.info;
}"""

IDS = "async (col) => (await db.collection(col).scan()).docs.map((d) => d._id).sort()"

WRITE = """async ([col, id, text]) => {
  await db.collection(col).create({text}, id);
  await db.flush();
}"""

SYNC = "async () => await db.syncStatus()"


class NativeDevice:
    """A native database and its sync client in a thread with its own event loop; everything
    that touches the database or the space runs on that loop (`call`)."""

    def __init__(self, path: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="native-device", daemon=True)
        self.thread.start()
        self.db = self.call(lambda: ostracon.open(path))
        self.handle: Any = None

    def call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(DEADLINE_S)

    def start(self, relay: str, space: Space) -> None:
        fut = asyncio.run_coroutine_threadsafe(start_sync(self.db, relay, space, **FAST), self.loop)
        self.handle = fut.result(DEADLINE_S)

    def write(self, col: str, doc_id: str, text: str) -> None:
        def go() -> None:
            self.db.collection(col).create({"text": text}, id=doc_id)
            self.db.flush()
            if self.handle is not None:
                self.handle.notify_local_change()

        self.call(go)

    def ids(self, col: str = "notes") -> set[str]:
        return self.call(lambda: {d["_id"] for d in self.db.collection(col).iter_docs()})

    def close(self) -> None:
        if self.handle is not None:
            asyncio.run_coroutine_threadsafe(self.handle.stop(), self.loop).result(DEADLINE_S)
        self.call(self.db.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEADLINE_S)


def _page(browser, e2e_url):
    ctx = browser.new_context()
    page = ctx.new_page()
    goto_e2e(page, e2e_url)
    return ctx, page


def _roles(dev: NativeDevice, admin: Space) -> dict[str, str]:
    return dev.call(lambda: {m["actor"].hex(): m["role"] for m in admin.member_list()})


def test_native_admin_invites_and_removes_a_chromium_device(browser, e2e_url, relay_url, tmp_path):  # noqa: F811
    a = NativeDevice(str(tmp_path / "admin"))
    admin = a.call(lambda: Space.generate("team", identity=a.db.identity))
    writer_invite = a.call(lambda: admin.invite(relay_url, role="writer"))
    a.write("notes", "before", "from the admin")
    a.start(relay_url, admin)
    ctx, b = _page(browser, e2e_url)
    try:
        info = b.evaluate(OPEN, [f"b-{uuid.uuid4().hex[:8]}", {"invite": writer_invite}, relay_url, FAST])
        assert info["spaceId"] == admin.space_id.hex() and info["removed"] is False
        wait_until(lambda: _roles(a, admin).get(info["actor"]) == "writer", "the browser's join reaches the admin",
                   DEADLINE_S)
        wait_until(lambda: "before" in b.evaluate(IDS, "notes"), "the admin's note in the browser", DEADLINE_S)
        assert b.evaluate("async () => (await db.refreshInfo()).role") == "writer"
        members = b.evaluate("async () => await db.members()")
        assert {m["role"] for m in members} == {"admin", "writer"} and [m["me"] for m in members].count(True) == 1
        b.evaluate(WRITE, ["notes", "b-member", "written while a member"])
        wait_until(lambda: "b-member" in a.ids(), "the browser's note at the admin", DEADLINE_S)

        # The admin removes the browser: the key rotates to a new epoch and a new room.
        old_room = a.call(lambda: admin.room_id)
        a.call(lambda: admin.remove(bytes.fromhex(info["actor"]),
                                    upto=a.db.version_vector().get(info["actor"], 0)))
        a.call(a.handle.notify_local_change)
        wait_until(lambda: b.evaluate("async () => (await db.refreshInfo()).removed"), "the browser learns it was "
                   "removed", DEADLINE_S)
        assert a.call(lambda: admin.room_id) != old_room
        assert b.evaluate("async () => (await db.refreshInfo()).room") == old_room  # no key of the new epoch
        a.write("notes", "after", "written after the removal")
        b.evaluate(WRITE, ["notes", "b-after", "written after its removal"])
        wait_until(lambda: (a.call(lambda: a.handle.status.pending) == 0), "the admin's note is at the relay",
                   DEADLINE_S)
        err = wait_until(lambda: (b.evaluate(SYNC) or {}).get("error"), "the browser's sync reports it", DEADLINE_S)
        assert err["name"] == "NotAMemberError"
        assert "after" not in b.evaluate(IDS, "notes")
        # A device that joins now catches up with everything the members wrote, and the removed
        # browser's late note is in no replica.
        c = NativeDevice(str(tmp_path / "c"))
        try:
            invite = a.call(lambda: admin.invite(relay_url))
            a.call(a.handle.notify_local_change)
            sc = c.call(lambda: Space.from_invite(invite, identity=c.db.identity))
            c.start(relay_url, sc)
            wait_until(lambda: {"before", "b-member", "after"} <= c.ids(), "a new device catches up", DEADLINE_S)
            assert "b-after" not in c.ids() and "b-after" not in a.ids()
        finally:
            c.close()
    finally:
        ctx.close()
        a.close()


def test_a_reader_cannot_write_and_a_wrong_invite_is_a_wrong_key_error(browser, e2e_url, relay_url,  # noqa: F811
                                                                       tmp_path):
    a = NativeDevice(str(tmp_path / "admin"))
    admin = a.call(lambda: Space.generate("club", identity=a.db.identity))
    reader_invite = a.call(lambda: admin.invite(relay_url, role="reader"))
    a.start(relay_url, admin)
    ctx, r = _page(browser, e2e_url)
    name = f"r-{uuid.uuid4().hex[:8]}"
    try:
        info = r.evaluate(OPEN, [name, {"invite": reader_invite}, relay_url, FAST])
        wait_until(lambda: _roles(a, admin).get(info["actor"]) == "reader", "the reader's join", DEADLINE_S)
        wait_until(lambda: r.evaluate("async () => (await db.refreshInfo()).role") == "reader",
                   "the reader learns its role", DEADLINE_S)
        r.evaluate(WRITE, ["notes", "by-reader", "a reader tries to write"])
        wait_until(lambda: (r.evaluate(SYNC) or {}).get("pending") == 0, "the reader's block is at the relay",
                   DEADLINE_S)
        a.write("notes", "by-admin", "the admin writes")
        wait_until(lambda: "by-admin" in r.evaluate(IDS, "notes"), "the admin's note at the reader", DEADLINE_S)
        wait_until(lambda: a.call(lambda: a.handle.replica.refused) >= 1, "the admin refuses the reader's block",
                   DEADLINE_S)
        assert "by-reader" not in a.ids()
        # Only admins invite: the reader's own invite call is refused.
        err = r.evaluate("async () => { try { await db.invite({role: 'writer'}); return null; } "
                         "catch (e) { return e.name; } }")
        assert err is not None
        r.evaluate("async () => db.close()")
        # This database keeps the club's space: an invite of another space is a WrongKeyError.
        stranger = Space.generate("club")
        got = r.evaluate("async ([name, invite, relay]) => { try { await Ostracon.open({name, relay, "
                         "space: {invite}, tabs: 'exclusive'}); return null; } catch (e) { return e.name; } }",
                         [name, stranger.invite(relay_url), relay_url])
        assert got == "WrongKeyError"
    finally:
        ctx.close()
        a.close()


# ---- the Notes PWA ---------------------------------------------------------------------------

def test_pwa_invite_remove_and_the_removed_device_loses_access(browser, server):  # noqa: F811
    a = make_app(browser.new_context(), server.url)
    a.create(new_space())
    before = a.new_note("Before", "shared with b")
    b = make_app(browser.new_context(), server.url)
    b.join_link(a.invite_link("writer"))
    b.wait_note(before, "body", "shared with b")
    wait_js(a.page, "window.__notes.state.db.members().then((m) => m.length === 2)", timeout=SYNC_TIMEOUT_MS)
    b_actor = b.page.evaluate("window.__notes.state.db.info.actor")

    # The admin opens the space dialog: two members; removing takes two clicks.
    a.page.click("#space-btn")
    a.page.wait_for_selector(f"#member-list .member[data-actor='{b_actor}'] .member-remove")
    roles = a.page.eval_on_selector_all("#member-list .member", "els => els.map((e) => e.dataset.role).sort()")
    assert roles == ["admin", "writer"]
    remove = f"#member-list .member[data-actor='{b_actor}'] .member-remove"
    a.page.click(remove)
    a.page.click(remove)
    wait_js(a.page, "document.querySelectorAll('#member-list .member').length === 1")
    a.page.keyboard.press("Escape")

    # The removed device says so, and reads nothing written afterwards.
    wait_js(b.page, "window.__notes.state.sync.error && window.__notes.state.sync.error.name === 'NotAMemberError'",
            timeout=SYNC_TIMEOUT_MS)
    assert "removed" in b.page.inner_text("#sync-error")
    after = a.new_note("After", "not for b")
    late = b.new_note("Late", "b writes after its removal")
    wait_js(a.page, "window.__notes.state.sync.pending === 0", timeout=SYNC_TIMEOUT_MS)
    b.page.click("#space-btn")
    b.page.wait_for_selector("#member-removed:not([hidden])")
    # A device invited now catches up with everything the members wrote; b's late note is
    # in no replica.
    c = make_app(browser.new_context(), server.url)
    c.join_link(a.invite_link("reader"))
    c.wait_note(after, "body", "not for b")
    assert b.note(after) is None and a.note(late) is None and c.note(late) is None
    assert a.errors == [] and b.errors == [] and c.errors == []
    for app in (a, b, c):
        app.page.context.close()


def test_pwa_old_passphrase_space_keeps_opening_and_moves_only_when_asked(browser, server):  # noqa: F811
    a = make_app(browser.new_context(), server.url)
    a.goto()
    a.page.wait_for_selector("#join:not([hidden])")
    # A space remembered by an earlier version of the app: a name and a passphrase.
    legacy = {"name": new_space(), "passphrase": f"pass-{uuid.uuid4().hex}"}
    a.page.evaluate("(s) => localStorage.setItem('ostracon-notes/space', JSON.stringify(s))", legacy)
    a.goto()
    a.wait_ready()
    old = a.page.evaluate("window.__notes.state.db.info")
    assert old["spaceId"] is None
    kept = a.new_note("Old space", "written before the move")
    a.page.click("#space-btn")
    a.page.wait_for_selector("#migrate-sec:not([hidden])")
    assert a.page.is_hidden("#members-sec")
    a.page.click("#migrate-btn")
    a.wait_ready()
    moved = a.page.evaluate("window.__notes.state.db.info")
    assert moved["spaceId"] and moved["role"] == "admin" and moved["room"] != old["room"]
    a.wait_note(kept, "body", "written before the move")
    saved = a.page.evaluate("JSON.parse(localStorage.getItem('ostracon-notes/space'))")
    assert saved["kind"] == "kept" and "passphrase" not in saved
    # Reloading opens the member space kept in the database, not the old one.
    a.page.reload()
    a.wait_ready()
    assert a.page.evaluate("window.__notes.state.db.info.spaceId") == moved["spaceId"]
    assert a.errors == []
    a.page.context.close()
