"""Set-up shared by the Chromium benches (bench_compact.py, bench_firstpaint.py): serving the
bundle and a bench's own pages, opening a page, filling a database with documents, the
command line and the browser.

Pages are served by a bench server over the bundle (e2e/conftest.py's handler: the MIME types
Pyodide needs, no-cache revalidation, /__e2e__.html). A bench page is written to a file and
served as a file, like an app's page, rather than through a Playwright route: a route sends
every request of the page through Playwright and turns off Chromium's HTTP cache, neither of
which a real visit does.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from conftest import CHROMIUM, CHROMIUM_ARGS, DIST, _Handler, _Server

#: The blank page that imports ostracon.js (e2e/conftest.py) and what says it has loaded.
E2E_PAGE = "/__e2e__.html"
LOADED = "window.__ostraconLoaded === true"
#: How long a page may take to load (ms): a cold Pyodide boot on a loaded machine.
PAGE_TIMEOUT_MS = 900_000

#: JS: `fillDocs(collection, docs)` creates `docs` documents of 10 fields each (numbers and
#: strings, like W1) in batches of 500 (`createMany`). Declared inside a bench's page function.
FILL_DOCS_JS = """async function fillDocs(col, docs) {
    for (let b = 0; b < docs; b += 500) {
      const batch = [];
      for (let i = b; i < Math.min(docs, b + 500); i++) {
        const d = {}; for (let j = 0; j < 10; j++) d["f" + j] = j % 3 ? i * 31 + j : `v${i}-${j}`;
        batch.push(d);
      }
      await col.createMany(batch);
    }
  }"""


class _PageHandler(_Handler):
    """The e2e server's handler, also serving a bench's pages from files (`page_files`: URL
    path without query -> file)."""

    page_files: Mapping[str, str] = {}

    def translate_path(self, path: str) -> str:
        page = self.page_files.get(path.split("?")[0])
        return page if page is not None else super().translate_path(path)


def serve_bundle(dist: Path, pages: Mapping[str, str] | None = None,
                 workdir: Path | None = None) -> tuple[_Server, str]:
    """Serve the bundle `dist` and `pages` (URL path -> HTML, written as files to `workdir`,
    which must then be given) on a loopback port: (server, base URL). Stop it with `stop`."""
    files: dict[str, str] = {}
    for path, html in (pages or {}).items():
        if workdir is None:
            raise ValueError("pages need a workdir to be written to")
        page_file = workdir / path.strip("/").replace("/", "_")
        page_file.write_text(html, encoding="utf-8")
        files[path] = str(page_file)
    handler = type("_BenchPageHandler", (_PageHandler,), {"page_files": files})
    srv = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(dist)))
    threading.Thread(target=srv.serve_forever, name="bench-http", daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def stop(srv: _Server) -> None:
    """Stop a server of `serve_bundle` and close its socket."""
    srv.shutdown()
    srv.server_close()


def open_page(ctx, url: str, path: str = E2E_PAGE, ready: str = LOADED):
    """A new page of `ctx` at `url + path`, once the JS expression `ready` holds."""
    page = ctx.new_page()
    page.goto(url + path)
    page.wait_for_function(ready, timeout=PAGE_TIMEOUT_MS)
    return page


def bench_arguments(docs: int, rounds: int) -> argparse.Namespace:
    """The benches' command line: --dist (the bundle), --docs, --rounds."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", default=str(DIST))
    ap.add_argument("--docs", type=int, default=docs)
    ap.add_argument("--rounds", type=int, default=rounds)
    return ap.parse_args()


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium (e2e/conftest.py: CHROMIUM, CHROMIUM_ARGS) under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


#: The browser a bench visits pages in (`visitor_context`). "profile": a profile on disk, as
#: in any ordinary window, where Chromium keeps V8's code cache: a page that loads Pyodide's
#: WebAssembly again gets the machine code compiled on earlier visits, hot functions already
#: optimized. "private": a Playwright `new_context()`, which is off the record, as a private
#: window: no code cache, so every page compiles the WebAssembly again and runs each function
#: at V8's baseline tier until it is optimized anew (measured: a worker's first 100 KB of
#: sha256 took 10.8 ms there and 3.1 ms in a profile; its first cyclic collection 43 and 15 ms).
VISITORS = ("profile", "private")


@contextlib.contextmanager
def visitor_context(p, visitor: str) -> Iterator:
    """A browser context of Debian's Chromium for `visitor` (VISITORS), closed afterwards
    (with its browser, and for "profile" the profile directory deleted). `p`: a started
    `sync_playwright()`."""
    if visitor not in VISITORS:
        raise ValueError(f"visitor must be one of {VISITORS}, not {visitor!r}")
    if visitor == "profile":
        with tempfile.TemporaryDirectory(prefix="ostracon-bench-profile-") as profile:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield ctx
            finally:
                ctx.close()
        return
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        ctx = browser.new_context()
        try:
            yield ctx
        finally:
            ctx.close()
    finally:
        browser.close()
