#!/usr/bin/env python3
"""Assemble dist/web/: the self-contained browser bundle of Ostracon.

    python wasm-build/build.py [--out dist/web] [--force]

What goes in (nothing is fetched from a CDN at run time; the page loads everything from its
own origin):
  - the Pyodide core from node_modules/pyodide (installed by `npm ci` from package-lock.json);
  - the msgpack wheel for Pyodide's platform and the pure-Python graphql-core wheel
    (`pip download` with the pyemscripten tag), pinned by version and sha256 and cached under
    wasm-build/cache/ so that repeat builds do not touch the network. graphql-core is in the
    lock but no dependency of ostracon: the worker loads it on the first GraphQL call;
  - the ostracon wheel (`pip wheel --no-deps .`, pure Python, reproducible because
    SOURCE_DATE_EPOCH is fixed);
  - a custom pyodide-lock.json: the core lock's `info` header plus exactly these wheels
    (sha256, imports, depends), so `loadPyodide({lockFileURL})` + `loadPackage("ostracon")`
    work offline;
  - the web/ sources (loader, worker, bridge, ES-module API, the demo); a page's module marked
    `data-build-inline` is inlined into it as a classic script (inline.py), its CSP hash kept
    in build-info.json as `csp_script_hashes` for the server's script-src;
  - precompressed copies (`.gz`, gzip level 9, mtime 0) of every text and wasm file above
    PRECOMPRESS_MIN_BYTES, for servers that send `Content-Encoding: gzip` from them.

Idempotent and deterministic: the same inputs give byte-identical outputs. A digest over every
input is kept in dist/web/build-info.json; when it matches (and the outputs are intact) the
build does nothing. Only stdlib is used so the script runs with any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inline import InlineError, inline_page  # noqa: E402 (beside this script, not a package)

ROOT = Path(__file__).resolve().parent.parent
PYODIDE_DIR = ROOT / "node_modules" / "pyodide"
CACHE_DIR = ROOT / "wasm-build" / "cache"
WEB_SRC = ROOT / "web"

# The Pyodide version the bundle is built for; package.json pins the same one. A mismatch
# means `npm ci` was not run after package.json changed.
PYODIDE_VERSION = "314.0.7"
# Files of the Pyodide core that a page needs (the .d.ts/.map/console files are not shipped).
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")

# msgpack for Pyodide 314 (Python 3.14, ABI 2026_0). Pinned by version and digest so that a
# rebuild on another day cannot silently pick up another wheel.
MSGPACK_VERSION = "1.2.4"
MSGPACK_WHEEL = f"msgpack-{MSGPACK_VERSION}-cp314-cp314-pyemscripten_2026_0_wasm32.whl"
MSGPACK_SHA256 = "06a0657a4110d563255006b7cb7147432f67827144e429c2cdb1c967548d1817"
# graphql-core (pure Python) for db.graphql() in the browser; the same version the native
# test suite runs against.
GRAPHQL_VERSION = "3.3.2"
GRAPHQL_WHEEL = f"graphql_core-{GRAPHQL_VERSION}-py3-none-any.whl"
GRAPHQL_SHA256 = "d83f49ee18d2db89fb575dab6ffefa8aa1bf5f60dff8a6781db6f63420041348"
# (lock name, pip requirement, wheel file, sha256) of every third-party wheel in the bundle.
PINNED_WHEELS = (
    ("msgpack", f"msgpack=={MSGPACK_VERSION}", MSGPACK_WHEEL, MSGPACK_SHA256),
    ("graphql-core", f"graphql-core=={GRAPHQL_VERSION}", GRAPHQL_WHEEL, GRAPHQL_SHA256),
)
# Files compressed ahead of time: compressible types only, and only where it pays.
PRECOMPRESS_SUFFIXES = (".js", ".mjs", ".wasm", ".json", ".html", ".css", ".svg", ".webmanifest", ".zip")
PRECOMPRESS_MIN_BYTES = 1024
PIP_PLATFORM_ARGS = (
    "--no-deps", "--only-binary=:all:", "--platform", "pyemscripten_2026_0_wasm32",
    "--python-version", "3.14", "--implementation", "cp", "--abi", "cp314",
)

# 1980-01-01 is the earliest time a zip entry can carry; fixing it makes the wheel's bytes a
# function of its contents only.
SOURCE_DATE_EPOCH = "315532800"

# Inputs of the ostracon wheel: everything hatchling puts into it.
WHEEL_INPUTS = ("pyproject.toml", "README.md")
WHEEL_SOURCE_DIR = "py/ostracon"

BUILD_INFO = "build-info.json"
BUILD_SCRIPT_VERSION = 2  # bump when the output layout changes


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_source_files() -> list[Path]:
    files = [ROOT / p for p in WHEEL_INPUTS if (ROOT / p).exists()]
    for p in sorted((ROOT / WHEEL_SOURCE_DIR).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".pyo")):
            files.append(p)
    return files


def web_source_files() -> list[Path]:
    if not WEB_SRC.is_dir():
        return []
    return sorted(p for p in WEB_SRC.rglob("*") if p.is_file() and not p.name.startswith("."))


def digest_of(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p.relative_to(ROOT)).encode() + b"\0")
        h.update(sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def input_digest() -> str:
    h = hashlib.sha256()
    h.update(f"script:{BUILD_SCRIPT_VERSION}:{sha256_file(Path(__file__))}\n".encode())
    h.update(f"inline:{sha256_file(Path(__file__).with_name('inline.py'))}\n".encode())
    h.update(f"pyodide:{digest_of([PYODIDE_DIR / f for f in PYODIDE_FILES + ('pyodide-lock.json',)])}\n".encode())
    for name, _req, _file, digest in PINNED_WHEELS:
        h.update(f"{name}:{digest}\n".encode())
    h.update(f"wheel:{digest_of(wheel_source_files())}\n".encode())
    h.update(f"web:{digest_of(web_source_files())}\n".encode())
    return h.hexdigest()


def check_pyodide() -> dict:
    pkg = PYODIDE_DIR / "package.json"
    if not pkg.exists():
        sys.exit(f"build.py: {PYODIDE_DIR} is missing: run `npm ci` (make npm-ci) first")
    version = json.loads(pkg.read_text())["version"]
    if version != PYODIDE_VERSION:
        sys.exit(f"build.py: node_modules has pyodide {version}, expected {PYODIDE_VERSION}: run `npm ci`")
    for f in PYODIDE_FILES:
        if not (PYODIDE_DIR / f).exists():
            sys.exit(f"build.py: {PYODIDE_DIR / f} missing (broken npm install?)")
    return json.loads((PYODIDE_DIR / "pyodide-lock.json").read_text())


def pinned_wheel(python: str, requirement: str, wheel: str, sha256: str) -> Path:
    """A pinned wheel for Pyodide's platform, from the cache or (once) from PyPI."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cached = CACHE_DIR / wheel
    if cached.exists() and sha256_file(cached) == sha256:
        return cached
    with tempfile.TemporaryDirectory(prefix="ostracon-pipdl-") as tmp:
        cmd = [python, "-m", "pip", "download", "-q", *PIP_PLATFORM_ARGS, requirement, "-d", tmp]
        print("build.py:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        got = Path(tmp) / wheel
        if not got.exists():
            sys.exit(f"build.py: pip download did not produce {wheel}: {os.listdir(tmp)}")
        digest = sha256_file(got)
        if digest != sha256:
            sys.exit(f"build.py: {wheel} has sha256 {digest}, expected {sha256}")
        shutil.copyfile(got, cached)
    return cached


def precompress(src: Path, dst: Path) -> None:
    """`dst` = gzip of `src`, byte-reproducible (no name, mtime 0)."""
    data = gzip.compress(src.read_bytes(), compresslevel=9, mtime=0)
    write_if_changed(dst, data)


def ostracon_wheel(python: str, workdir: Path) -> Path:
    """Build the pure-Python ostracon wheel reproducibly."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH, PIP_NO_CACHE_DIR="0")
    out = workdir / "wheel"
    out.mkdir()
    cmd = [python, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)]
    print("build.py:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=workdir)
    wheels = sorted(out.glob("ostracon-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"build.py: expected one ostracon wheel, got {wheels}")
    return wheels[0]


def wheel_imports(wheel: Path) -> list[str]:
    """Top-level importable names of a wheel (what the lock's `imports` lists)."""
    with zipfile.ZipFile(wheel) as z:
        tops = set()
        for name in z.namelist():
            first = name.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")):
                continue
            tops.add(first[:-3] if first.endswith(".py") else first)
    return sorted(tops)


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def lock_entry(name: str, wheel: Path, depends: list[str]) -> dict:
    # Same fields as the entries of Pyodide's own lock file.
    return {
        "name": name,
        "version": wheel_version(wheel),
        "file_name": wheel.name,
        "install_dir": "site",
        "sha256": sha256_file(wheel),
        "package_type": "package",
        "imports": wheel_imports(wheel),
        "depends": depends,
        "unvendored_tests": False,
        "tool": {},
    }


def write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def copy_if_changed(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and dst.stat().st_size == src.stat().st_size and sha256_file(dst) == sha256_file(src):
        return
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def outputs_intact(out: Path, info: dict) -> bool:
    for rel, digest in info.get("files", {}).items():
        p = out / rel
        if not p.exists() or sha256_file(p) != digest:
            return False
    return True


def build(out: Path, python: str, force: bool) -> None:
    core_lock = check_pyodide()
    digest = input_digest()
    info_path = out / BUILD_INFO
    if not force and info_path.exists():
        try:
            old = json.loads(info_path.read_text())
        except ValueError:
            old = {}
        if old.get("inputs") == digest and outputs_intact(out, old):
            print(f"build.py: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} is up to date")
            return

    out.mkdir(parents=True, exist_ok=True)
    expected: set[str] = set()

    for f in PYODIDE_FILES:
        copy_if_changed(PYODIDE_DIR / f, out / f)
        expected.add(f)

    wheels: dict[str, Path] = {}
    for name, req, wheel, digest in PINNED_WHEELS:
        w = pinned_wheel(python, req, wheel, digest)
        copy_if_changed(w, out / w.name)
        expected.add(w.name)
        wheels[name] = out / w.name

    with tempfile.TemporaryDirectory(prefix="ostracon-wheel-") as tmp:
        ow = ostracon_wheel(python, Path(tmp))
        copy_if_changed(ow, out / ow.name)
        expected.add(ow.name)
        lock = {
            "info": core_lock["info"],
            "packages": {
                **{name: lock_entry(name, path, []) for name, path in wheels.items()},
                "ostracon": lock_entry("ostracon", out / ow.name, ["msgpack"]),
            },
        }
    write_if_changed(out / "pyodide-lock.json",
                     (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode())
    expected.add("pyodide-lock.json")

    script_hashes: set[str] = set()
    for src in web_source_files():
        rel = src.relative_to(WEB_SRC).as_posix()
        if src.suffix == ".html":
            try:
                html, hashes = inline_page(src.read_text(encoding="utf-8"), src, WEB_SRC)
            except InlineError as exc:
                sys.exit(f"build.py: {rel}: {exc}")
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            write_if_changed(out / rel, html.encode("utf-8"))
            script_hashes.update(hashes)
        else:
            copy_if_changed(src, out / rel)
        expected.add(rel)

    for rel in sorted(expected):
        if rel.endswith(PRECOMPRESS_SUFFIXES) and (out / rel).stat().st_size >= PRECOMPRESS_MIN_BYTES:
            precompress(out / rel, out / (rel + ".gz"))
            expected.add(rel + ".gz")

    # Remove leftovers of earlier builds (an old wheel version, a deleted web file) so the
    # bundle is exactly the function of its inputs.
    for p in sorted(out.rglob("*"), reverse=True):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel not in expected and rel != BUILD_INFO:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()

    files = {rel: sha256_file(out / rel) for rel in sorted(expected)}
    info = {
        "inputs": digest,
        "pyodide": PYODIDE_VERSION,
        "python": core_lock["info"].get("python"),
        "ostracon_wheel": ow.name,
        "wheels": sorted(p.name for p in wheels.values()),
        "files": files,
        "csp_script_hashes": sorted(script_hashes),
    }
    write_if_changed(info_path, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
    print(f"build.py: wrote {len(files)} files to {out}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "dist" / "web"), help="output directory")
    ap.add_argument("--python", default=sys.executable, help="python whose pip builds/downloads wheels")
    ap.add_argument("--force", action="store_true", help="rebuild even if inputs are unchanged")
    args = ap.parse_args(argv)
    build(Path(args.out).resolve(), args.python, args.force)


if __name__ == "__main__":
    main()
