"""Layering: no module reads another class's `_private` members.

A leading underscore means "private to its module". An access `obj._name` where `obj` is not
`self`/`cls` is allowed only when a class of the same module defines `_name` (friend classes
of one module, `other._key` in `__eq__`), and never inside `ostracon/db/`: there `Database`,
`Collection` and their helpers talk to each other and to the replica only through public
members.
"""

from __future__ import annotations

import ast
import pathlib

import ostracon

PACKAGE = pathlib.Path(ostracon.__file__).parent
STRICT = ("db",)   # subpackages where not even module-private friend access is allowed


def _defined_privates(tree: ast.AST) -> set[str]:
    """`_names` a class of this module defines: methods, nested classes, class-level
    annotations/assignments, `self._x = ...` targets and `__slots__` entries."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                out.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id == "__slots__" and isinstance(node.value, (ast.Tuple, ast.List)):
                    out.update(e.value for e in node.value.elts
                               if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return {n for n in out if n.startswith("_") and not n.startswith("__")}


def private_accesses(path: pathlib.Path, strict: bool, root: pathlib.Path = PACKAGE.parent) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    friends = set() if strict else _defined_privates(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if name in friends:
            continue
        rel = path.relative_to(root)
        found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_another_classes_private_members():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        found += private_accesses(path, strict=parts[0] in STRICT)
    assert found == [], "private members read from outside their class:\n" + "\n".join(found)


def test_the_check_finds_a_private_access(tmp_path):
    # The rule itself: a cross-object private read is found, self/cls reads are not, and a
    # module-local friend access is allowed outside db/ only.
    src = ("class A:\n    def __init__(self):\n        self._x = 1\n"
           "    def f(self, other, db):\n        return self._x + other._x + db._replica\n")
    p = tmp_path / "m.py"
    p.write_text(src)
    loose = [f.split(": ", 1)[1] for f in private_accesses(p, False, tmp_path)]
    strict = [f.split(": ", 1)[1] for f in private_accesses(p, True, tmp_path)]
    assert loose == ["db._replica"]
    assert sorted(strict) == ["db._replica", "other._x"]
