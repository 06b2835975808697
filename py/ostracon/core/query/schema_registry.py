"""The schema registry: each collection's DAG of content-addressed schema versions and the lenses
between them (functions, local to one registry, or declarative lenses: core/query/lenses.py).
PURE."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..errors import CorruptBlockError, LensNotFoundError, NotFoundError, SchemaValidationError, ValidationError  # noqa: F401  (re-exported)
from .lenses import DeclaredLens
from .schema import Schema
from .sdl import parse_sdl, type_closure

MAX_LENS_PATH = 64
# --------------------------------------------------------------------------------------
# Registry: version DAG + lenses

Lens = Callable[[dict], dict]


class SchemaRegistry:
    def __init__(self) -> None:
        self._versions: dict[str, Schema] = {}
        self._by_name: dict[str, list[str]] = {}
        self._children: dict[str, set[str]] = {}
        self._lenses: dict[str, dict[str, Lens]] = {}
        self._declared: dict[tuple[str, str], DeclaredLens] = {}

    # --- versions ------------------------------------------------------------------------
    def register(self, sdl: str) -> dict[str, Schema]:
        """Parse `sdl` and register every type in it as its collection's next version.

        Object types are resolved against the SDL first, then against the registered heads.
        Returns {name: Schema}; an unchanged type returns its current head."""
        defs = parse_sdl(sdl)
        lookup = {n: self.get(n).root for n in self._by_name}
        lookup.update(defs)
        out = {}
        for name, td in defs.items():
            emb = type_closure(td, lookup)
            head = self._head_id(name)
            # A new version links every leaf: concurrent versions are merged by it.
            cand = Schema(td, emb, tuple(self._leaves(name)))
            if head and self._versions[head].shape() == cand.shape():
                out[name] = self._versions[head]
                continue
            out[name] = self.add(cand)
        return out

    def add(self, schema: Schema) -> Schema:
        """Add a version (from register or from a peer). Parents must be known already."""
        if not isinstance(schema, Schema):
            raise ValidationError("add: expected a Schema")
        if schema.version_id in self._versions:
            return self._versions[schema.version_id]
        h = 1
        for p in schema.parents:
            ps = self._versions.get(p)
            if ps is None:
                raise NotFoundError(f"schema {schema.name}: parent version {p} is unknown")
            if ps.name != schema.name:
                raise ValidationError(f"schema {schema.name}: parent {p} belongs to {ps.name}")
            h = max(h, ps.height + 1)
        object.__setattr__(schema, "height", h)
        self._versions[schema.version_id] = schema
        self._by_name.setdefault(schema.name, []).append(schema.version_id)
        for p in schema.parents:
            self._children.setdefault(p, set()).add(schema.version_id)
        return schema

    def _leaves(self, name: str) -> list[str]:
        return [i for i in self._by_name.get(name, ()) if not self._children.get(i)]

    def _head_id(self, name: str) -> str | None:
        leaves = self._leaves(name)
        if not leaves:
            return None
        return max(leaves, key=lambda i: (self._versions[i].height, i))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Schema:
        head = self._head_id(name)
        if head is None:
            raise NotFoundError(f"no schema named {name!r}")
        return self._versions[head]

    def has(self, version_id: str) -> bool:
        """Whether this registry holds the version `version_id`."""
        return version_id in self._versions

    def version(self, version_id: str) -> Schema:
        try:
            return self._versions[version_id]
        except KeyError:
            raise NotFoundError(f"unknown schema version {version_id!r}") from None

    def history(self, name: str) -> list[Schema]:
        """Every version of `name`, parents before children ((height, id) order)."""
        ids = self._by_name.get(name)
        if not ids:
            raise NotFoundError(f"no schema named {name!r}")
        return sorted((self._versions[i] for i in ids), key=lambda s: (s.height, s.version_id))

    # --- lenses --------------------------------------------------------------------------
    def register_lens(self, from_id: str, to_id: str, fn: Lens, *, reverse: Lens | None = None) -> None:
        """A lens from one version to another of the same schema (and optionally back).
        `fn` is a callable (local to this registry) or a `DeclaredLens` (data, the same on
        every replica). A callable never replaces a declared lens of the same direction
        (ValidationError): replicas would then read the same document differently."""
        a, b = self.version(from_id), self.version(to_id)
        if a.name != b.name:
            raise ValidationError(f"a lens must stay within one schema ({a.name} → {b.name})")
        if not callable(fn) or (reverse is not None and not callable(reverse)):
            raise ValidationError("a lens must be callable")
        if from_id == to_id:
            raise ValidationError("a lens needs two different versions")
        for x, y, f in ((from_id, to_id, fn), (to_id, from_id, reverse)):
            if f is not None and not isinstance(f, DeclaredLens) and (x, y) in self._declared:
                raise ValidationError(f"lens {x} → {y} is declared (replicated); a local "
                                      f"function cannot replace it")
        self._set_lens(from_id, to_id, fn)
        if reverse is not None:
            self._set_lens(to_id, from_id, reverse)

    def _set_lens(self, a: str, b: str, fn: Lens) -> None:
        self._lenses.setdefault(a, {})[b] = fn
        if isinstance(fn, DeclaredLens):
            self._declared[(a, b)] = fn

    def declared_lens(self, from_id: str, to_id: str) -> DeclaredLens | None:
        """The declarative lens from → to, if one is registered."""
        return self._declared.get((from_id, to_id))

    def declared_lenses(self) -> list[tuple[str, str]]:
        """(from, to) of every registered declarative lens, sorted."""
        return sorted(self._declared)

    def drop_declared_lens(self, from_id: str, to_id: str) -> None:
        """Forget the declarative lens from → to (its replicated record was retracted)."""
        lens = self._declared.pop((from_id, to_id), None)
        steps = self._lenses.get(from_id, {})
        if lens is not None and steps.get(to_id) is lens:
            del steps[to_id]

    def lens_path(self, from_id: str, to_id: str) -> list[str]:
        """Shortest chain of version ids from → to through registered lenses."""
        self.version(from_id)
        self.version(to_id)
        prev: dict[str, str | None] = {from_id: None}
        q = deque([from_id])
        while q:
            cur = q.popleft()
            if cur == to_id:
                path = [cur]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])  # type: ignore[arg-type]
                path.reverse()
                if len(path) - 1 > MAX_LENS_PATH:
                    break
                return path
            for nxt in sorted(set(self._lenses.get(cur, {})) | self._additive_children(cur)):
                if nxt not in prev:
                    prev[nxt] = cur
                    q.append(nxt)
        raise LensNotFoundError(f"no lens path from schema version {from_id} to {to_id}")

    def _additive_children(self, version_id: str) -> set[str]:
        """Child versions that only add optional fields: the identity is their lens, so a
        chain v1 →(additive) v2 →(lens) v3 composes without a lens for the additive step."""
        a = self._versions[version_id]
        out = set()
        for cid_ in self._children.get(version_id, ()):
            b = self._versions[cid_]
            if b.embedded != a.embedded:
                continue
            old = {f.name: f for f in a.fields}
            new = {f.name: f for f in b.fields}
            if all(new.get(n) == f for n, f in old.items()) and not any(
                    f.type.required for n, f in new.items() if n not in old):
                out.add(cid_)
        return out

    def _step(self, a: str, b: str) -> Lens:
        fn = self._lenses.get(a, {}).get(b)
        return fn if fn is not None else dict  # an additive step: the identity

    def migrate(self, doc: dict, from_id: str, to_id: str, *, check: bool = True) -> dict:
        """Translate a document's user fields along the lens path; metadata is kept.

        With `check` the result is validated against the target version, so a lens bug is
        reported (naming the field) instead of surfacing later."""
        if from_id == to_id:
            return doc
        path = self.lens_path(from_id, to_id)
        meta = {k: v for k, v in doc.items() if isinstance(k, str) and k.startswith("_")}
        user = {k: v for k, v in doc.items() if not (isinstance(k, str) and k.startswith("_"))}
        for a, b in zip(path, path[1:], strict=False):
            try:
                user = self._step(a, b)(dict(user))
            except Exception as e:  # a lens is user code: report which step failed
                raise ValidationError(f"lens {a} → {b} failed: {type(e).__name__}: {e}") from e
            if not isinstance(user, dict):
                raise ValidationError(f"lens {a} → {b} returned {type(user).__name__}, not a dict")
        if check:
            self.version(to_id).validate(user)
        return {**user, **meta}

    def read(self, doc: dict, version_id: str | None, *, check: bool = True) -> dict:
        """Bring a document written under `version_id` to its schema's current head."""
        if version_id is None:
            return doc
        target = self.get(self.version(version_id).name).version_id
        return self.migrate(doc, version_id, target, check=check)
