"""ostracon.runtime.browser.snapshot: deferred extension packages and the snapshot's imports.

The memory snapshot itself is made and restored under Node (`make test-node` runs every
runtime check in a restored interpreter) and in Chromium (e2e); here, natively, the logic
that decides what goes into it.
"""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ostracon.runtime.browser import snapshot as snap

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def pkgdir(tmp_path, monkeypatch):
    """A directory on sys.path for throwaway packages; their modules are forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_pkg(root: Path, name: str, init: str, **modules: str) -> None:
    d = root / name
    d.mkdir()
    (d / "__init__.py").write_text(textwrap.dedent(init))
    for mod, text in modules.items():
        (d / f"{mod}.py").write_text(textwrap.dedent(text))


def test_placeholder_loads_the_real_package_on_first_use(pkgdir):
    write_pkg(pkgdir, "extpkg", """
        from .core import packb
        LOADS = [1]
    """, core="def packb(x):\n    return b'<' + repr(x).encode() + b'>'\n")
    (pkgdir / "user.py").write_text("import extpkg\n\ndef enc(x):\n    return extpkg.packb(x)\n")
    assert snap.defer(["extpkg"]) == ["extpkg"]
    import user  # binds the placeholder, as the engine's modules do while the snapshot is made

    assert isinstance(user.extpkg, snap.DeferredModule)
    assert snap.deferred_loaded(["extpkg"]) == []
    assert "extpkg.core" not in sys.modules
    assert user.enc(7) == b"<7>"
    real = sys.modules["extpkg"]
    assert not isinstance(real, snap.DeferredModule)
    assert user.extpkg.packb is real.packb and user.extpkg.LOADS is real.LOADS
    assert snap.deferred_loaded(["extpkg"]) == ["extpkg"]
    from extpkg.core import packb  # submodules resolve against the real package

    assert packb is real.packb


def test_missing_package_raises_and_keeps_the_placeholder(pkgdir):
    snap.defer(["notyetthere"])
    ph = sys.modules["notyetthere"]
    with pytest.raises(ModuleNotFoundError):
        _ = ph.anything
    assert sys.modules["notyetthere"] is ph
    write_pkg(pkgdir, "notyetthere", "VALUE = 42\n")
    import importlib

    importlib.invalidate_caches()
    assert ph.VALUE == 42
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ph.nope


def test_defer_refuses_a_package_already_imported(pkgdir):
    write_pkg(pkgdir, "already", "X = 1\n")
    import already  # noqa: F401

    with pytest.raises(snap.SnapshotError, match="already imported"):
        snap.defer(["already"])
    snap.defer(["already_not"])
    assert snap.defer(["already_not"]) == []  # a placeholder stays as it is


def test_prepare_imports_the_modules_and_rejects_import_time_use(pkgdir):
    write_pkg(pkgdir, "ext2", "def f():\n    return 3\n")
    (pkgdir / "lazy_user.py").write_text("import ext2\n\ndef g():\n    return ext2.f()\n")
    (pkgdir / "eager_user.py").write_text("import ext2\nF = ext2.f\n")
    frozen = gc.get_freeze_count()
    try:
        n = snap.prepare(["lazy_user"], ["ext2"])
        # Nothing frozen: under Pyodide's JSPI a frozen engine made the incremental collector
        # crash (snapshot.py, "Why the collector is not frozen").
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
    assert n == len(sys.modules) and "lazy_user" in sys.modules
    assert snap.deferred_loaded(["ext2"]) == []
    with pytest.raises(snap.SnapshotError, match="ext2"):
        snap.prepare(["eager_user"], ["ext2"])


def test_resume_reseeds_random():
    random.seed(1234)
    state = random.getstate()
    snap.resume()
    assert random.getstate() != state


def test_the_engine_imports_with_msgpack_deferred():
    """Every module the snapshot preloads imports without touching msgpack (a fresh
    interpreter: this test process has msgpack loaded already)."""
    code = textwrap.dedent("""
        import sys
        from importlib.util import find_spec, module_from_spec, spec_from_file_location
        where = find_spec("ostracon").submodule_search_locations[0]
        spec = spec_from_file_location("_ostracon_snapshot", where + "/runtime/browser/snapshot.py")
        mod = module_from_spec(spec); sys.modules[spec.name] = mod; spec.loader.exec_module(mod)
        mod.prepare()
        assert "msgpack._cmsgpack" not in sys.modules, "an extension was loaded"
        assert all(m in sys.modules for m in mod.PRELOAD)
        # Imported lazily after a restore (e2e/test_browser_snapshot.py checks that it is).
        assert "ostracon.db.graphql" not in sys.modules and "graphql" not in sys.modules
        import ostracon
        db = ostracon.open()  # the placeholder turns into the real msgpack on first use
        db.collection("c").create({"a": 1})
        assert "msgpack._cmsgpack" in sys.modules or "msgpack.fallback" in sys.modules
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "py"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")


def test_load_deferred_imports_the_real_packages_now(pkgdir):
    write_pkg(pkgdir, "lazyext", "VALUE = 3\n")
    write_pkg(pkgdir, "notimported", "VALUE = 4\n")
    snap.defer(["lazyext"])
    ph = sys.modules["lazyext"]
    assert snap.load_deferred(["lazyext", "notimported"]) == ["lazyext", "notimported"]
    assert snap.deferred_loaded(["lazyext"]) == ["lazyext"] and ph.__dict__["VALUE"] == 3
    assert sys.modules["notimported"].VALUE == 4
    assert snap.load_deferred(["lazyext", "notimported"]) == []  # nothing left to load


def test_load_deferred_raises_what_the_import_raises(pkgdir):
    snap.defer(["nosuchext"])
    with pytest.raises(ModuleNotFoundError):
        snap.load_deferred(["nosuchext"])
