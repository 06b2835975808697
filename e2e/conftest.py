"""Playwright fixtures for the browser end-to-end tests.

- Chromium is Debian's /usr/bin/chromium (never `playwright install`): pytest-playwright's
  `browser_type_launch_args` is overridden with its path and the flags from PLATFORM.md.
- `web_server` serves dist/web (built by `make web`) on a loopback port with a tiny threaded
  http.server that knows the MIME types Pyodide needs (.wasm, .mjs) and sends no-cache, so a
  rebuilt wheel is never shadowed by the browser cache (no-cache: always revalidated). It also
  serves /__e2e__.html, a blank page that imports ostracon.js.
"""

from __future__ import annotations

import functools
import http.server
import os
import socketserver
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = Path(os.environ.get("OSTRACON_WEB_DIST", ROOT / "dist" / "web"))
CHROMIUM = os.environ.get("OSTRACON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

sys.path.insert(0, str(ROOT / "e2e"))
sys.path.insert(0, str(ROOT / "tests"))

E2E_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>ostracon e2e</title></head>
<body><script type="module">
import Ostracon from "/ostracon.js";
window.Ostracon = Ostracon;
window.__ostraconLoaded = true;
</script></body></html>
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".json": "application/json",
        ".whl": "application/octet-stream",
        ".zip": "application/zip",
        ".py": "text/x-python; charset=utf-8",
    }

    def end_headers(self) -> None:
        # Revalidate every time (If-Modified-Since → 304): the browser may reuse its cached,
        # compiled wasm between pages, yet never runs a stale wheel after a rebuild.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?")[0] == "/__e2e__.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(E2E_PAGE)))
            self.end_headers()
            self.wfile.write(E2E_PAGE)
            return
        super().do_GET()

    def log_message(self, *args) -> None:  # keep test output readable
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve_directory(directory: Path) -> tuple[_Server, str]:
    handler = functools.partial(_Handler, directory=str(directory))
    srv = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, name="e2e-http", daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.fixture(scope="session")
def web_server():
    if not (DIST / "build-info.json").exists():
        raise RuntimeError(f"{DIST} is not built: run `make web`")
    srv, url = serve_directory(DIST)
    yield url
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def e2e_url(web_server):
    return f"{web_server}/__e2e__.html"


def goto_e2e(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.__ostraconLoaded === true")


@pytest.fixture(scope="module")
def shared_context(browser):
    """One browser context per test module: pages in it share the HTTP and wasm code caches
    (a warm Pyodide boot is ~2x faster than a cold one). Tests use unique database names, so
    IndexedDB state shared by the context does not couple them."""
    ctx = browser.new_context()
    yield ctx
    ctx.close()


@pytest.fixture()
def shared_page(shared_context):
    """A new page in the module's shared context (pytest-playwright's own `page` and
    `context` fixtures stay untouched for tests that need a fresh context)."""
    p = shared_context.new_page()
    yield p
    p.close()
