"""Ostracon Notes (web/demo/) under test: a real `ostracon serve` (relay + static app +
/healthz) on a free loopback port over a copy of the built bundle, and the app driven as a
person would (`App`). Fixtures: `web_dir`, `server`, `artifacts_dir` (screenshots go to
e2e/artifacts/pwa/, gitignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import DIST, ROOT
from polling import stop_process, wait_until

ARTIFACTS = Path(os.environ.get("OSTRACON_E2E_ARTIFACTS", ROOT / "e2e" / "artifacts")) / "pwa"
# Startup includes Pyodide's cold start (3-5 s here) plus the passphrase KDF.
BOOT_TIMEOUT_MS = 60_000
# Generous bound for sync to deliver: the assertion is that it arrives, not how fast.
SYNC_TIMEOUT_MS = 30_000
APP = "/demo/"
# Safety net for `ostracon serve` to answer /healthz: ~1 s on a quiet machine, 10-20 s seen
# with the CPU shared by many parallel test runs (a deadline, not a measurement).
SERVE_START_TIMEOUT_S = 60

# A root page for the bundle when the build has none (`ostracon serve` wants an index.html
# at the root of the web directory).
ROOT_INDEX = b"""<!doctype html><meta charset="utf-8"><title>Ostracon</title>
<meta http-equiv="refresh" content="0; url=demo/"><a href="demo/">Ostracon Notes</a>
"""


def wait_js(page, expression: str, arg=None, timeout: int = SYNC_TIMEOUT_MS):
    """Poll a JS expression (or a function of `arg`) in `page` until it is truthy; `timeout`
    in ms is a safety net. Through `page.evaluate` (the DevTools protocol) because
    `wait_for_function` compiles its predicate with eval inside the page, which the app's
    Content-Security-Policy (no 'unsafe-eval') refuses."""
    from playwright.sync_api import Error

    def check():
        try:
            return page.evaluate(expression, arg)
        except Error as exc:
            if "context was destroyed" in str(exc):  # a navigation in between: poll again
                return None
            raise

    return wait_until(check, f"{expression!r} in {page.url}", timeout / 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ostracon serve` in a subprocess; stop() and start() again keep port and data."""

    def __init__(self, web: Path, data: Path) -> None:
        self.web = web
        self.data = data
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = Path(sys.executable).with_name("ostracon")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ostracon.cli"]
        cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--data", str(self.data),
                "--web", str(self.web)]
        self.log = open(self.data / "serve.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ostracon serve exited: {(self.data / 'serve.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("ostracon serve did not become healthy")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
            self.log.close()


@pytest.fixture(scope="session")
def web_dir(tmp_path_factory) -> Path:
    """The built bundle (dist/web), copied so that a concurrent rebuild cannot change it under
    a running test; gets a root index.html if the build has none."""
    if not (DIST / "build-info.json").exists():
        raise RuntimeError(f"{DIST} is not built: run `make web`")
    if not (DIST / "demo" / "index.html").exists():
        raise RuntimeError(f"{DIST}/demo is missing: the build must copy web/demo")
    out = tmp_path_factory.mktemp("web") / "web"
    shutil.copytree(DIST, out)
    if not (out / "index.html").exists():
        (out / "index.html").write_bytes(ROOT_INDEX)
    return out


@pytest.fixture()
def server(web_dir, tmp_path):
    data = tmp_path / "serve-data"
    data.mkdir()
    s = Server(web_dir, data)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="session", autouse=True)
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():  # screenshots are outputs, never committed
        ignore.write_text("*\n")
    return ARTIFACTS


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def new_space() -> str:
    return f"space-{uuid.uuid4().hex[:8]}"


class App:
    """One page of the app, with the actions a person would take."""

    def __init__(self, page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)

    def goto(self) -> None:
        self.page.goto(self.base + APP)

    def create(self, space: str, passphrase: str | None = None) -> None:
        """Create a new space (a random key; the passphrase, if any, locks this device's copy)."""
        self.goto()
        self.page.wait_for_selector("#join:not([hidden])")
        self.page.fill("#space-name", space)
        if passphrase:
            self.page.fill("#space-pass", passphrase)
        self.page.click("#join-pass button[type=submit]")
        self.wait_ready()

    def invite_link(self, role: str = "writer") -> str:
        """An invite link for one more device, made in the space dialog's members section."""
        self.page.click("#space-btn")
        self.page.wait_for_selector("#members-sec:not([hidden]) #invite-controls:not([hidden])")
        self.page.select_option("#invite-role", role)
        self.page.click("#invite-btn")
        wait_js(self.page, "document.getElementById('invite-link').value")
        link = self.page.input_value("#invite-link")
        self.page.keyboard.press("Escape")
        return link

    def join_link(self, link: str) -> None:
        self.page.goto(link)
        self.page.wait_for_selector("#join:not([hidden])")
        self.page.click("#join-invite button[type=submit]")
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_js(self.page, "window.__notes && window.__notes.ready === true", timeout=BOOT_TIMEOUT_MS)

    def wait(self, expression: str, arg=None, timeout: int = SYNC_TIMEOUT_MS):
        """`wait_js` in this page; on timeout the error also says what the editor and the
        engine were doing (`save_state`): a save or a sync that never finished, or a worker
        that no longer answers."""
        try:
            return wait_js(self.page, expression, arg=arg, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the editor and engine then: {self.save_state()}") from None

    def wait_saved(self) -> None:
        self.wait("""(() => { const c = window.__notes.state.current;
            return c && !c.dirty.size && !c.inflight.size && !c.draft
              && ['saved', 'synced'].includes(c.phase); })()""")

    def wait_body(self, value: str) -> None:
        """Until the editor shows `value` as the note's body."""
        self.wait("([v]) => document.getElementById('body').value === v", arg=[value])

    def save_state(self) -> object:
        """What an unfinished save looks like: the editor's phase and pending fields, and the
        engine's sync status (with the suspension gate's counts)."""
        return self.page.evaluate("""async () => {
          const s = window.__notes.state, c = s.current;
          const editor = c && {phase: c.phase, dirty: [...c.dirty], inflight: [...c.inflight], draft: !!c.draft};
          let sync = null;
          try {
            const late = new Promise((r) => setTimeout(() => r("no answer in 5 s"), 5000));
            sync = await Promise.race([s.db.syncStatus(), late]);
          } catch (e) { sync = String(e); }
          return {editor, sync};
        }""")

    def new_note(self, title: str, body: str = "") -> str:
        self.page.click("#new-note")
        self.page.fill("#title", title)
        if body:
            self.page.fill("#body", body)
        self.wait_saved()
        return self.page.evaluate("window.__notes.state.current.id")

    def open_note(self, title: str) -> None:
        self.page.click(f".note-item:has(.note-title:text-is('{title}'))")
        self.page.wait_for_selector("#editor:not([hidden])")

    def edit(self, field: str, value: str) -> None:
        self.page.fill(f"#{field}", value)
        self.wait_saved()

    def titles(self) -> list[str]:
        return self.page.eval_on_selector_all(".note-item .note-title", "els => els.map(e => e.textContent)")

    def note(self, note_id: str) -> dict | None:
        return self.page.evaluate("(id) => window.__notes.state.db.collection('notes').get(id)", note_id)

    def wait_note(self, note_id: str, field: str, value, timeout: int = SYNC_TIMEOUT_MS) -> None:
        self.wait("""([id, f, v]) => { const d = window.__notes.state.notes.get(id);
            return !!d && JSON.stringify(d[f]) === JSON.stringify(v); }""",
            arg=[note_id, field, value], timeout=timeout)

    def state_hash(self) -> str:
        return self.page.evaluate("window.__notes.state.db.stateHash()")

    def sync_text(self) -> str:
        return self.page.inner_text("#sync")


def make_app(context, base: str) -> App:
    return App(context.new_page(), base)


B64_ENVELOPES = ("async (v) => (await window.__notes.state.db.blocksSince(v))"
                 ".map((e) => btoa(String.fromCharCode(...e)))")
APPLY_B64 = """async (list) => window.__notes.state.db.applyBlocks(
    list.map((s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0))))"""
