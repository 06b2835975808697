"""wasm-build/inline.py: a page's module and its imports as one classic script, and its CSP hash.

The bundle is checked by running it: Node runs the modules as ES modules and the bundle as a
classic script, and both must print the same lines (values, re-exports, renames, each module
once, in dependency order). Forms the inliner does not support are build errors.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "wasm-build"))

from inline import MARKER_RE, InlineError, bundle, csp_hash, inline_page  # noqa: E402

NODE = shutil.which("node")
MODULES = {
    "c.js": """// c: no imports
console.log("c runs");
export const base = 40;
export function add(a, b) { return a + b; }
export class Box { constructor(v) { this.v = v; } }
const hidden = "not exported";
export { hidden as shown };
""",
    "lib/b.js": """import { base, add } from "../c.js";
console.log("b runs");
export const answer = add(base, 2);
export async function later() { return answer; }
""",
    "a.js": """import { answer as value, later } from "./lib/b.js";
import {
  Box,
  shown,
} from "./c.js";
export { add } from "./c.js";
console.log("a runs", value, new Box(1).v, shown, typeof this);
later().then((v) => console.log("later", v));
""",
}


def write_modules(root: Path, modules: dict[str, str]) -> None:
    for rel, text in modules.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def node(*args: str) -> str:
    assert NODE, "node is needed (the web build and test-node use it too)"
    return subprocess.run([NODE, *args], check=True, capture_output=True, text=True, timeout=60).stdout


def test_the_bundle_runs_like_the_modules(tmp_path):
    write_modules(tmp_path, MODULES)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    as_modules = node(str(tmp_path / "a.js"))
    script = tmp_path / "bundle.cjs"
    script.write_text(bundle(tmp_path / "a.js", tmp_path), encoding="utf-8")
    assert node(str(script)) == as_modules
    assert as_modules.splitlines()[:3] == ["c runs", "b runs", "a runs 42 1 not exported undefined"]


@pytest.mark.parametrize("source, why", [
    ('export default 1;\n', "module syntax"),
    ('export let x = 1;\n', "module syntax"),
    ('import * as c from "./c.js";\n', "module syntax"),
    ('import "./c.js";\n', "module syntax"),
    ('const u = import.meta.url;\n', "module syntax"),
    ('const m = import("./c.js");\n', "module syntax"),
    ('import { x } from "https://cdn.example/x.js";\n', "only relative imports"),
    ('import { x } from "../../outside.js";\n', "not a file under"),
    ('import { a-b } from "./c.js";\n', "unsupported name list"),
    ('const s = "</SCRIPT>";\n', "ends or confuses"),
    ('const s = "<!-- x";\n', "ends or confuses"),
])
def test_unsupported_forms_are_build_errors(tmp_path, source, why):
    write_modules(tmp_path / "web", {"c.js": MODULES["c.js"], "x.js": source})
    with pytest.raises(InlineError, match=why):
        bundle(tmp_path / "web" / "x.js", tmp_path / "web")


def test_line_ends_are_those_the_html_parser_hashes(tmp_path):
    (tmp_path / "crlf.js").write_bytes(b"export const a = 1;\r\nconsole.log(a);\rconsole.log(2);\r\n")
    script = bundle(tmp_path / "crlf.js", tmp_path)
    assert "\r" not in script and "console.log(a);\nconsole.log(2);\n" in script


def test_an_import_cycle_is_a_build_error(tmp_path):
    write_modules(tmp_path, {"p.js": 'import { q } from "./q.js";\nexport const p = 1;\n',
                             "q.js": 'import { p } from "./p.js";\nexport const q = 2;\n'})
    with pytest.raises(InlineError, match="import cycle: p.js -> q.js -> p.js"):
        bundle(tmp_path / "p.js", tmp_path)


def test_csp_hash_is_the_base64_sha256_of_the_script_text():
    assert csp_hash("") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
    text = "console.log('é')"
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    assert csp_hash(text) == f"'sha256-{digest}'"


def test_inline_page_replaces_marked_modules_only(tmp_path):
    write_modules(tmp_path, MODULES)
    html = ('<head><script type="module" async src="a.js" data-build-inline></script>\n'
            '<script type="module" src="c.js"></script></head>')
    out, hashes = inline_page(html, tmp_path / "index.html", tmp_path)
    script = bundle(tmp_path / "a.js", tmp_path)
    assert out == (f'<head><script>{script}</script><link rel="modulepreload" href="a.js">\n'
                   '<script type="module" src="c.js"></script></head>')
    assert hashes == [csp_hash(script)]
    assert inline_page("<p>no scripts</p>", tmp_path / "index.html", tmp_path) == ("<p>no scripts</p>", [])


def test_the_app_page_has_two_marked_modules_that_inline():
    page = ROOT / "web" / "demo" / "index.html"
    html = page.read_text(encoding="utf-8")
    # early.js at the top of <head>; firstscreen.js after the note list it draws into.
    assert [m.group(1) for m in MARKER_RE.finditer(html)] == ["early.js", "firstscreen.js"]
    assert html.index('id="notes"') < html.index('src="firstscreen.js"')
    out, hashes = inline_page(html, page, ROOT / "web")
    assert len(set(hashes)) == 2 and "data-build-inline" not in out
