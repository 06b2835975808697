"""Inline scripts for the bundle's pages: an ES module and its static imports as one classic
script in the page, plus the CSP hash that lets exactly that script run.

A page marks a module to inline with `data-build-inline`:

    <script type="module" async src="early.js" data-build-inline></script>

and the build (build.py) writes instead

    <script>…early.js and its imports…</script><link rel="modulepreload" href="early.js">

A classic script in the page runs while the page is parsed, without a request to the server;
a module script, even async, waits for its file and then for each of its imports (one round
trip each, more on a busy server). The module file itself stays in the bundle (other modules
import it; the preload keeps its fetch early).

The page's Content-Security-Policy allows the inline script by its hash
(`script-src 'sha256-…'`, CSP Level 3, "hash-source"), never by 'unsafe-inline': the build
records the hashes in build-info.json (`csp_script_hashes`) and `ostracon serve` adds them.

Only the module forms this project's page modules use are accepted; anything else is a build
error rather than a silently different script:
  import { a, b as c } from "./x.js";      export function/async function/const/class NAME
  export { a, b as c } from "./x.js";      export { a, b as c };
Each module runs in its own function scope, in dependency order (each once), in strict mode
as modules do; an import binds the exporting module's value once it has run (not a live
binding: `export let`/`var` are refused for that reason). Only stdlib: build.py's rule.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

# The marker of a module script the build inlines (module docstring).
MARKER_RE = re.compile(r'<script type="module" async src="([^"]+)" data-build-inline></script>')
IMPORT_RE = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"([^"]+)";[ \t]*$', re.M)
REEXPORT_RE = re.compile(r'^export\s*\{([^}]*)\}\s*from\s*"([^"]+)";[ \t]*$', re.M)
EXPORT_LIST_RE = re.compile(r'^export\s*\{([^}]*)\};[ \t]*$', re.M)
EXPORT_DECL_RE = re.compile(r"^export (?=(?:async function\*?|function\*?|const|class)\s+([A-Za-z_$][\w$]*))", re.M)
# What is left after the forms above were rewritten must not be module syntax.
LEFTOVER_RE = re.compile(r"^\s*(?:import|export)\b|\bimport\s*\.\s*meta\b|\bimport\s*\(", re.M)
NAME_RE = re.compile(r"^[A-Za-z_$][\w$]*$")


class InlineError(Exception):
    """A page's inline module cannot be turned into a classic script (message says why)."""


def _names(spec: str, where: str) -> list[tuple[str, str]]:
    """`a, b as c` → [(a, a), (b, c)] (exported name, local name)."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        words = part.split()
        if len(words) == 1 and NAME_RE.match(words[0]):
            out.append((words[0], words[0]))
        elif len(words) == 3 and words[1] == "as" and NAME_RE.match(words[0]) and NAME_RE.match(words[2]):
            out.append((words[0], words[2]))
        else:
            raise InlineError(f"{where}: unsupported name list {spec.strip()!r}")
    return out


def _module(path: Path, root: Path, mods: dict[Path, tuple[str, str]], stack: tuple[Path, ...]) -> str:
    """Add `path` and its imports to `mods` (path → (variable, code); dependencies first, as
    dicts keep insertion order); returns the module's variable name."""
    path = path.resolve()
    if path in stack:
        raise InlineError(f"import cycle: {' -> '.join(p.name for p in (*stack, path))}")
    if path in mods:
        return mods[path][0]
    if not path.is_relative_to(root) or not path.is_file():
        raise InlineError(f"{path.name}: not a file under {root.name}/")
    where = path.relative_to(root).as_posix()
    # The HTML parser turns CR LF and CR into LF before the browser hashes a script's text:
    # the hash is taken over the same text.
    src = path.read_text(encoding="utf-8").replace("\r\n", "\n").replace("\r", "\n")
    prologue: list[str] = []
    exports: list[tuple[str, str]] = []

    def dep(spec: str) -> str:
        if not spec.startswith(("./", "../")):
            raise InlineError(f"{where}: only relative imports can be inlined, not {spec!r}")
        return _module(path.parent / spec, root, mods, (*stack, path))

    def import_(m: re.Match[str]) -> str:
        var = dep(m.group(2))
        prologue.append("const { " + ", ".join(f"{e}: {loc}" for e, loc in _names(m.group(1), where))
                        + f" }} = {var};")
        return ""

    def reexport(m: re.Match[str]) -> str:
        var = dep(m.group(2))
        for e, loc in _names(m.group(1), where):
            exports.append((loc, f"{var}.{e}"))
        return ""

    def export_list(m: re.Match[str]) -> str:
        exports.extend((loc, e) for e, loc in _names(m.group(1), where))
        return ""

    def export_decl(m: re.Match[str]) -> str:
        exports.append((m.group(1), m.group(1)))
        return ""

    src = IMPORT_RE.sub(import_, src)
    src = REEXPORT_RE.sub(reexport, src)
    src = EXPORT_LIST_RE.sub(export_list, src)
    src = EXPORT_DECL_RE.sub(export_decl, src)
    left = LEFTOVER_RE.search(src)
    if left:
        line = src.count("\n", 0, left.start()) + 1
        raise InlineError(f"{where}:{line}: module syntax the inliner does not support")
    var = f"m{len(mods)}_" + re.sub(r"\W", "_", path.stem)
    body = "\n".join(prologue) + "\n" + src.rstrip() + "\nreturn { " + ", ".join(
        name if name == value else f"{name}: {value}" for name, value in exports) + " };"
    # A plain call of a strict function: `this` is undefined at its top level, as in a module.
    mods[path] = (var, f"// {where}\nconst {var} = (function () {{\n{body}\n}})();")
    return var


def bundle(entry: Path, root: Path) -> str:
    """The classic script that runs module `entry` (a file under `root`) and its static
    imports; raises InlineError for a form the module docstring does not list, an import
    outside `root`, a cycle, or text that would end the script element early."""
    mods: dict[Path, tuple[str, str]] = {}
    _module(entry, root.resolve(), mods, ())
    script = '(function () {\n"use strict";\n' + "\n".join(code for _var, code in mods.values()) + "\n})();\n"
    lowered = script.lower()
    if "</script" in lowered or "<!--" in lowered or "<script" in lowered:
        raise InlineError(f"{entry.name}: the script contains text that ends or confuses a script element")
    return script


def csp_hash(script: str) -> str:
    """The CSP hash-source of an inline script's text: 'sha256-<base64>' (CSP Level 3)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def inline_page(html: str, page: Path, root: Path) -> tuple[str, list[str]]:
    """`html` (the page at `page`, under `root`) with every marked module inlined, and the CSP
    hashes of the inlined scripts, in page order."""
    hashes: list[str] = []

    def replace(m: re.Match[str]) -> str:
        script = bundle(page.parent / m.group(1), root)
        hashes.append(csp_hash(script))
        return f'<script>{script}</script><link rel="modulepreload" href="{m.group(1)}">'

    return MARKER_RE.sub(replace, html), hashes
