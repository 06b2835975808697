"""Secondary indexes: single-field and compound, optionally unique, maintained from changes.

An index is an ordered set of flat tuple entries `(r1, v1, …, rn, vn, 0, doc_id)`: for
each indexed field the rank and value of its `query.value_key` (null/missing → `(0, None)`),
then a 0 separator and the document id. Flat tuples keep every comparison shallow, so
the whole order is decided by CPython's tuple comparison in C (nested key tuples cost ~5×
more per bisect), and it is the total order documented in query.py. Entries live in a
chunked sorted list (a tiny B-tree of sorted chunks): inserts and deletes cost O(log n +
chunk size) instead of the O(n) memmove of one big list, which matters at 100k+ documents.

Bounds: a lookup is a list of half-open ranges `[lo, hi)` of flat tuples. A key prefix `P`
sorts before every entry that starts with it, and `P + (7,)` after all of them (7 is above
every rank and above the 0 separator), so `[P, P + (7,))` is exactly the entries whose key
starts with `P`; `P + (r,)` / `P + (r + 1,)` bracket all values of rank r.

Uniqueness (documented choice, as SQL): a unique index constrains only documents whose
indexed fields are all non-null; any number of documents may lack the field(s).
- Local writes: the engine calls `CollectionIndexes.check_unique(doc)` before writing;
  a duplicate → `ConflictError` naming the index and value, nothing written.
- Remote (concurrent) writes cannot be refused by a CRDT: duplicates are indexed anyway and
  listed by `violations()` until one side changes or deletes its document.
- While a unique index is building (or dropped, warm collection) the check only sees the
  documents indexed so far; duplicates that slip through show up in `violations()`.

Index states: "ready" (used by the planner), "building" (maintained from changes, filled by
a rebuild job, not used by the planner), "dropped" (warm collection: entries freed, not
maintained; a rebuild brings it back).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConflictError, NotFoundError, ValidationError
from .fields import METADATA_FIELDS, make_getter, parse_path
from .keys import key_to_value, value_key

__all__ = ["flat", "unflat_values", "END", "SortedKeyList", "IndexDefinition", "Index", "UniqueViolation",
           "CollectionIndexes", "IndexCatalog", "READY", "BUILDING", "DROPPED"]

READY, BUILDING, DROPPED = "ready", "building", "dropped"

END = 7                  # above every rank (0..6) and the 0 separator before the id
NULL_FLAT = (0, None)


def flat(vkey: tuple) -> tuple:
    """A value key as its flat (rank, value) piece; null → (0, None)."""
    return vkey if len(vkey) == 2 else NULL_FLAT


def unflat_values(key: tuple) -> tuple:
    """Flat key → the field values it encodes."""
    return tuple(None if key[i] == 0 else key_to_value((key[i], key[i + 1]))
                 for i in range(0, len(key) - 1, 2))

# Chunk size of the sorted list. 1,000 keeps each insort memmove tiny (8 KB of pointers)
# while the list of chunk maxima stays short (100 chunks at 100k entries).
CHUNK_LOAD = 1000
# Compound index width. Eight fields is far beyond useful; it bounds key size and planning.
MAX_INDEX_FIELDS = 8
# Index names end up in explain output, errors and metadata records: keep them short.
MAX_INDEX_NAME = 128


class SortedKeyList:
    """A sorted multiset of comparable items kept as a list of sorted chunks."""

    __slots__ = ("_lists", "_maxes", "_len", "_load")

    def __init__(self, items: Iterable = (), *, load: int = CHUNK_LOAD):
        self._load = load
        self._lists: list[list] = []
        self._maxes: list = []
        self._len = 0
        data = sorted(items)
        for i in range(0, len(data), load):
            chunk = data[i:i + load]
            self._lists.append(chunk)
            self._maxes.append(chunk[-1])
        self._len = len(data)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator:
        for chunk in self._lists:
            yield from chunk

    def clear(self) -> None:
        self._lists.clear()
        self._maxes.clear()
        self._len = 0

    def add(self, item: tuple) -> None:
        maxes = self._maxes
        if not maxes:
            self._lists.append([item])
            maxes.append(item)
            self._len = 1
            return
        i = bisect_left(maxes, item)
        if i == len(maxes):
            i -= 1
            self._lists[i].append(item)
            maxes[i] = item
        else:
            insort(self._lists[i], item)
        self._len += 1
        chunk = self._lists[i]
        if len(chunk) > 2 * self._load:
            half = len(chunk) // 2
            right = chunk[half:]
            del chunk[half:]
            self._lists.insert(i + 1, right)
            maxes[i] = chunk[-1]
            maxes.insert(i + 1, right[-1])

    def remove(self, item: tuple) -> bool:
        """Remove one occurrence; False if absent."""
        maxes = self._maxes
        i = bisect_left(maxes, item)
        if i == len(maxes):
            return False
        chunk = self._lists[i]
        j = bisect_left(chunk, item)
        if j == len(chunk) or chunk[j] != item:
            return False
        del chunk[j]
        self._len -= 1
        if not chunk:
            del self._lists[i]
            del maxes[i]
        elif j == len(chunk):
            maxes[i] = chunk[-1]
        return True

    def _locate(self, bound: tuple) -> tuple[int, int]:
        i = bisect_left(self._maxes, bound)
        if i == len(self._maxes):
            return i, 0
        return i, bisect_left(self._lists[i], bound)

    def irange(self, lo: tuple, hi: tuple) -> Iterator:
        """Items x with lo <= x < hi (by bisect_left positions), in order."""
        i, j = self._locate(lo)
        ei, ej = self._locate(hi)
        lists = self._lists
        while i < ei:
            chunk = lists[i]
            if j == 0:
                yield from chunk
            else:
                yield from chunk[j:]
            i += 1
            j = 0
        if i == ei and i < len(lists) and j < ej:
            yield from lists[i][j:ej]

    def scan_from(self, lo: tuple, hi: tuple, limit: int | None = None) -> list:
        """Items in [lo, hi) found by one bisect and a forward walk: for tiny ranges
        (point lookups on unique keys) this halves the bisect work of slice_range."""
        i, j = self._locate(lo)
        out: list = []
        lists = self._lists
        while i < len(lists):
            chunk = lists[i]
            while j < len(chunk):
                x = chunk[j]
                if not x < hi or (limit is not None and len(out) >= limit):
                    return out
                out.append(x)
                j += 1
            i += 1
            j = 0
        return out

    def slice_range(self, lo: tuple, hi: tuple, limit: int | None = None) -> list:
        """Like irange but returns a list, built with slices (much faster for big ranges)."""
        i, j = self._locate(lo)
        ei, ej = self._locate(hi)
        lists = self._lists
        if (i, j) >= (ei, ej):
            return []
        if i == ei:
            if i < len(lists) and j < ej:
                out = lists[i][j:ej]
                return out if limit is None else out[:limit]
            return []
        out = lists[i][j:]
        i += 1
        while i < ei and (limit is None or len(out) < limit):
            out += lists[i]
            i += 1
        if i == ei and i < len(lists) and (limit is None or len(out) < limit):
            out += lists[i][:ej]
        return out if limit is None else out[:limit]

    def count_range(self, lo: tuple, hi: tuple) -> int:
        i, j = self._locate(lo)
        ei, ej = self._locate(hi)
        if (i, j) >= (ei, ej):
            return 0
        if i == ei:
            return ej - j
        n = len(self._lists[i]) - j
        for k in range(i + 1, ei):
            n += len(self._lists[k])
        return n + ej


@dataclass(frozen=True)
class IndexDefinition:
    """What an index covers. `fields` are dotted paths; validated on construction."""

    name: str
    fields: tuple[str, ...]
    unique: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > MAX_INDEX_NAME:
            raise ValidationError(f"index name must be 1..{MAX_INDEX_NAME} characters")
        if not isinstance(self.fields, tuple) or not self.fields:
            raise ValidationError(f"index {self.name}: needs at least one field")
        if len(self.fields) > MAX_INDEX_FIELDS:
            raise ValidationError(f"index {self.name}: at most {MAX_INDEX_FIELDS} fields")
        # The definition is stored (db/indexing.py meta record): a lone surrogate has no UTF-8
        # form, and accepted here it would fail every later flush instead of this call.
        for text in (self.name, *(f for f in self.fields if isinstance(f, str))):
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValidationError(f"index {text!r:.80}: names and fields must be valid Unicode "
                                          "(no lone surrogates)") from None
        paths = [parse_path(f, f"index {self.name}", root=True) for f in self.fields]
        if len(set(paths)) != len(paths):
            raise ValidationError(f"index {self.name}: a field appears twice")
        for p in paths:
            if p[0] in ("_heads", "_deleted", "_id"):
                raise ValidationError(
                    f"index {self.name}: cannot index {p[0]} (_id is always indexed; "
                    f"_heads/_deleted are not queryable keys)")
        if not isinstance(self.unique, bool):
            raise ValidationError(f"index {self.name}: unique must be a boolean")

    @property
    def paths(self) -> tuple[tuple[str, ...], ...]:
        return tuple(parse_path(f, "index", root=True) for f in self.fields)


@dataclass(frozen=True)
class UniqueViolation:
    """Several live documents share a key of a unique index (from concurrent remote writes)."""

    index: str
    values: tuple
    doc_ids: tuple[str, ...]


class Index:
    """One secondary index over one collection."""

    def __init__(self, definition: IndexDefinition):
        self.definition = definition
        self.name = definition.name
        self.paths = definition.paths
        self.unique = definition.unique
        self.state = BUILDING
        self.entries = SortedKeyList()
        self._keys: dict[str, tuple] = {}     # doc_id -> key, so removal never needs the old doc
        self._dups: set[tuple] = set()        # keys held by >1 doc (unique indexes only)
        # Unique indexes also map full key -> doc id (a list when remote writes duplicated
        # it): O(1) uniqueness checks and point lookups, for ~100 bytes per document.
        self._umap: dict | None = {} if definition.unique else None
        getters = [make_getter(p) for p in self.paths]
        if len(getters) == 1:
            g = getters[0]

            def key_for(d: dict) -> tuple:
                k = value_key(g(d))
                return k if len(k) == 2 else NULL_FLAT
        else:
            def key_for(d: dict) -> tuple:
                out: tuple = ()
                for g in getters:
                    k = value_key(g(d))
                    out += k if len(k) == 2 else NULL_FLAT
                return out
        self.key_for = key_for

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self) -> dict:
        return {"name": self.name, "fields": list(self.definition.fields),
                "unique": self.unique, "state": self.state, "entries": len(self.entries)}

    # --- maintenance ---------------------------------------------------------------------
    @staticmethod
    def constrained(key: tuple) -> bool:
        """Does uniqueness apply to this flat key? Not when a field is null or missing."""
        return 0 not in key[0::2]

    def put(self, doc_id: str, doc: dict) -> None:
        key = self.key_for(doc)
        old = self._keys.get(doc_id)
        if old is not None:
            if old == key:
                return
            self._remove_entry(doc_id, old)
        self._keys[doc_id] = key
        self.entries.add(key + (0, doc_id))
        if self._umap is not None:
            self._umap_add(key, doc_id)

    def _umap_add(self, key: tuple, doc_id: str) -> None:
        """Record doc_id under key in the unique map; a second holder makes it a duplicate."""
        um = self._umap
        assert um is not None  # called for unique indexes only
        cur = um.get(key)
        if cur is None:
            um[key] = doc_id
        else:
            if type(cur) is str:
                cur = um[key] = [cur]
            cur.append(doc_id)
            if self.constrained(key):
                self._dups.add(key)

    def remove(self, doc_id: str) -> None:
        old = self._keys.pop(doc_id, None)
        if old is not None:
            self._remove_entry(doc_id, old)

    def _remove_entry(self, doc_id: str, key: tuple) -> None:
        self.entries.remove(key + (0, doc_id))
        um = self._umap
        if um is not None:
            cur = um.get(key)
            if type(cur) is str:
                del um[key]
            elif cur is not None:
                cur.remove(doc_id)
                if len(cur) == 1:
                    um[key] = cur[0]
                    self._dups.discard(key)

    def clear(self) -> None:
        self.entries.clear()
        self._keys.clear()
        self._dups.clear()
        if self._umap is not None:
            self._umap.clear()

    def build(self, docs: Iterable[dict]) -> None:
        """Bulk (re)load from live documents: one sort instead of n inserts."""
        self.clear()
        keys = self._keys
        kf = self.key_for
        for d in docs:
            if d.get("_deleted"):
                continue
            keys[d["_id"]] = kf(d)
        self.entries = SortedKeyList(k + (0, i) for i, k in keys.items())
        if self._umap is not None:
            for i, k in keys.items():
                self._umap_add(k, i)

    # --- lookups ---------------------------------------------------------------------------
    def ids_for_key(self, key: tuple) -> list[str]:
        """Doc ids (sorted) whose full flat key is `key`: O(1) on unique indexes."""
        um = self._umap
        if um is not None and len(key) == 2 * len(self.paths):
            cur = um.get(key)
            if cur is None:
                return []
            return [cur] if type(cur) is str else sorted(cur)
        return [e[-1] for e in self.entries.irange(key, key + (END,))]

    def lookup(self, *values: Any) -> list[str]:
        """Doc ids whose leading indexed fields equal `values` (a prefix is fine)."""
        if not values or len(values) > len(self.paths):
            raise ValidationError(f"index {self.name}: give 1..{len(self.paths)} values")
        p: tuple = ()
        for v in values:
            p += flat(value_key(v))
        return [e[-1] for e in self.entries.irange(p, p + (END,))]

    def count_ranges(self, ranges: list) -> int:
        return sum(self.entries.count_range(lo, hi) for lo, hi in ranges)

    def violations(self) -> list[UniqueViolation]:
        out = []
        for key in sorted(self._dups):
            ids = tuple(sorted(self.ids_for_key(key)))
            if len(ids) > 1:
                out.append(UniqueViolation(self.name, unflat_values(key), ids))
        return out


def _index_name(fields: tuple[str, ...], unique: bool) -> str:
    return ("uidx_" if unique else "idx_") + "__".join(f.replace(".", "_") for f in fields)


class CollectionIndexes:
    """The indexes of one collection: definitions, maintenance from changes, uniqueness."""

    def __init__(self, collection: str = ""):
        self.collection = collection
        self._indexes: dict[str, Index] = {}

    def __iter__(self) -> Iterator[Index]:
        return iter(list(self._indexes.values()))

    def __len__(self) -> int:
        return len(self._indexes)

    def get(self, name: str) -> Index:
        try:
            return self._indexes[name]
        except KeyError:
            raise NotFoundError(f"{self.collection}: no index named {name!r}") from None

    def create_index(self, fields: str | list[str] | tuple[str, ...], unique: bool = False, name: str | None = None, *,
                     docs: Iterable[dict] | None = None) -> Index:
        """Define an index. Idempotent for an identical definition.

        With `docs` (the collection's live documents) the index is built at once and is
        ready; a unique index over data that already has duplicates is refused with
        ConflictError. Without `docs` it starts in state "building": the caller schedules
        a rebuild job (rebuild.RebuildScheduler) that fills it under the rate cap.
        """
        if isinstance(fields, str):
            fields = (fields,)
        if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) for f in fields):
            raise ValidationError("create_index: fields must be a field name or a list of names")
        fields = tuple(fields)
        defn = IndexDefinition(name or _index_name(fields, unique), fields, bool(unique))
        existing = self._indexes.get(defn.name)
        if existing is not None:
            if existing.definition == defn:
                return existing
            raise ValidationError(
                f"{self.collection}: index {defn.name!r} already exists with another definition")
        for other in self._indexes.values():
            if other.definition.fields == defn.fields and other.unique == defn.unique:
                return other  # same index under another name: do not keep two copies
        idx = Index(defn)
        if docs is not None:
            idx.build(docs)
            found = idx.violations() if idx.unique else []
            if found:
                v = found[0]
                raise ConflictError(
                    f"{self.collection}: cannot create unique index {defn.name}: "
                    f"{len(v.doc_ids)} documents share {_fmt(defn.fields, v.values)}")
            idx.state = READY
        self._indexes[defn.name] = idx
        return idx

    def drop_index(self, name: str) -> None:
        self.get(name)
        del self._indexes[name]

    def list_indexes(self) -> list[dict]:
        return [i.describe() for i in self._indexes.values()]

    def usable(self) -> list[Index]:
        return [i for i in self._indexes.values() if i.state == READY]

    # --- maintenance -------------------------------------------------------------------
    def apply_change(self, doc_id: str, old: dict | None, new: dict | None) -> None:
        """One visible change from the engine (old/new None = absent; `_deleted` = tombstone)."""
        gone = new is None or new.get("_deleted")
        for idx in self._indexes.values():
            if idx.state == DROPPED:
                continue
            if new is None or gone:
                idx.remove(doc_id)
            else:
                idx.put(doc_id, new)

    def drop_data(self) -> None:
        """Warm collection: free every index's entries, keep the definitions."""
        for idx in self._indexes.values():
            idx.clear()
            idx.state = DROPPED

    def begin_rebuild(self, names: Iterable[str] | None = None) -> list[Index]:
        """Empty the named (default: all) indexes and mark them building; returns them."""
        out = []
        for idx in self._indexes.values():
            if names is None or idx.name in names:
                idx.clear()
                idx.state = BUILDING
                out.append(idx)
        return out

    # --- uniqueness --------------------------------------------------------------------
    def check_unique(self, doc: dict, doc_id: str | None = None, current: dict | None = None) -> None:
        """Raise ConflictError if writing `doc` would duplicate a unique key held by another
        live document. Call before a local write; nothing is changed either way.

        `current`: the document as it is now. A write that leaves an index's key unchanged
        is never refused by that index, even when a merge already made the key a duplicate
        (reported by `violations()`): a duplicate must not freeze unrelated edits."""
        if doc_id is None:
            doc_id = doc.get("_id")
        for idx in self._indexes.values():
            if not idx.unique or idx.state == DROPPED:
                continue
            key = idx.key_for(doc)
            if not idx.constrained(key):
                continue
            if current is not None and idx.key_for(current) == key:
                continue
            for other in idx.ids_for_key(key):
                if other != doc_id:
                    raise ConflictError(
                        f"{self.collection}: unique index {idx.name} already has "
                        f"{_fmt(idx.definition.fields, unflat_values(key))} "
                        f"(document {other})")

    def violations(self) -> list[UniqueViolation]:
        out: list[UniqueViolation] = []
        for idx in self._indexes.values():
            if idx.unique:
                out.extend(idx.violations())
        return out


def _fmt(fields: tuple[str, ...], values: tuple) -> str:
    return ", ".join(f"{f}={v!r}" for f, v in zip(fields, values, strict=False))


class IndexCatalog:
    """Every collection's indexes; `on_change` is the hook the engine calls for each change."""

    def __init__(self) -> None:
        self._cols: dict[str, CollectionIndexes] = {}

    def collection(self, name: str) -> CollectionIndexes:
        c = self._cols.get(name)
        if c is None:
            c = self._cols[name] = CollectionIndexes(name)
        return c

    def on_change(self, collection: str, doc_id: str, old: dict | None, new: dict | None) -> None:
        c = self._cols.get(collection)
        if c is not None and len(c):
            c.apply_change(doc_id, old, new)

    def collections(self) -> list[str]:
        return sorted(self._cols)


# Re-exported for callers that validate index field names themselves.
INDEXABLE_METADATA = frozenset(METADATA_FIELDS - {"_heads", "_deleted", "_id", "_collection"})
