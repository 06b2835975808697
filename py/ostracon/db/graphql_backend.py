"""The GraphQL data backend over a Database, and the request rewrites that let the seed's
queries run as written (db/graphql.py builds the schema and executes).

Equality shorthand: in a filter, `{ocrComplete: true}` means `{ocrComplete: {_eq: true}}`
(DefraDB and the query layer accept both). GraphQL input coercion would refuse a scalar
where an operator block is typed, so `expand_shorthand` rewrites filter literals (and
filter variables) before validation: a field given a scalar, list or variable of a scalar
type becomes `{_eq: ...}`; `_and`/`_or`/`_not` and nested objects are walked.
"""

from __future__ import annotations

import copy
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    ListValueNode,
    NameNode,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    type_from_ast,
)
from graphql import GraphQLSchema as _Schema

from ..core import cid as cidlib
from ..core.block import check_doc_id, decode_seal
from ..core.errors import NotFoundError, ValidationError
from ..core.query.filters import compile_filter
from ..core.replica import Replica

_LOGIC = ("_and", "_or")


def _clone(node: Any, **changes: Any) -> Any:
    """A shallow copy of an AST node with some attributes replaced (locations are kept, so
    errors still point into the request text)."""
    c = copy.copy(node)
    for k, v in changes.items():
        object.__setattr__(c, k, v)   # AST nodes may be frozen dataclasses; the copy is ours
    return c
#: Depth of filter nesting the shorthand rewrite walks (deeper input is left as given and
#: validation reports it); matches the query depth bound of db/graphql.py.
MAX_FILTER_DEPTH = 16


def _block_literal(value: ValueNode, op_vars: set[str]) -> bool:
    """Whether a filter value is already an operator block or a nested filter."""
    if isinstance(value, ObjectValueNode):
        return True
    return isinstance(value, VariableNode) and value.name.value in op_vars


def _expand_object(node: ObjectValueNode, op_vars: set[str], depth: int) -> ObjectValueNode:
    if depth > MAX_FILTER_DEPTH:
        return node
    fields = []
    for f in node.fields:
        name, value = f.name.value, f.value
        if name in _LOGIC and isinstance(value, ListValueNode):
            value = _clone(value, values=tuple(
                _expand_object(v, op_vars, depth + 1) if isinstance(v, ObjectValueNode) else v
                for v in value.values))
        elif name == "_not" and isinstance(value, ObjectValueNode):
            value = _expand_object(value, op_vars, depth + 1)
        elif name.startswith("_") and name != "_docID":
            pass  # an operator of an enclosing block: left as given
        elif isinstance(value, ObjectValueNode):
            value = _expand_object(value, op_vars, depth + 1)
        elif not _block_literal(value, op_vars):
            value = ObjectValueNode(loc=value.loc, fields=(
                ObjectFieldNode(loc=value.loc, name=NameNode(loc=value.loc, value="_eq"), value=value),))
        fields.append(_clone(f, value=value))
    return _clone(node, fields=tuple(fields))


def _expand_value(v: Any, depth: int) -> Any:
    if type(v) is not dict or depth > MAX_FILTER_DEPTH:
        return v
    out: dict[str, Any] = {}
    for k, x in v.items():
        if k in _LOGIC and type(x) is list:
            out[k] = [_expand_value(y, depth + 1) for y in x]
        elif k == "_not" or (type(x) is dict and not (k.startswith("_") and k != "_docID")):
            out[k] = _expand_value(x, depth + 1)
        elif type(k) is str and k.startswith("_") and k != "_docID":
            out[k] = x
        else:
            out[k] = {"_eq": x}
    return out


def expand_shorthand(schema: _Schema, doc: DocumentNode,
                     variables: dict | None) -> tuple[DocumentNode, dict | None]:
    """(document, variables) with equality shorthand in `filter` arguments expanded."""
    variables = dict(variables) if variables else variables
    defs = []
    for d in doc.definitions:
        if not isinstance(d, OperationDefinitionNode):
            defs.append(d)
            continue
        op_vars: set[str] = set()
        for vd in d.variable_definitions or ():
            t = type_from_ast(schema, vd.type)
            named = None if t is None else get_named_type(t)
            if named is not None and named.name.endswith(("OperatorBlock", "FilterArg")):
                op_vars.add(vd.variable.name.value)
                if named.name.endswith("FilterArg") and variables and vd.variable.name.value in variables:
                    variables[vd.variable.name.value] = _expand_value(variables[vd.variable.name.value], 0)
        defs.append(_clone(d, selection_set=_expand_selections(d.selection_set, op_vars)))
    return _clone(doc, definitions=tuple(defs)), variables


def _expand_selections(sel: SelectionSetNode | None, op_vars: set[str]) -> SelectionSetNode | None:
    if sel is None:
        return None
    out = []
    for s in sel.selections:
        if isinstance(s, FieldNode):
            count = s.name.value == "_count"
            args = tuple(_expand_argument(a, op_vars, count) for a in s.arguments or ())
            s = _clone(s, arguments=args, selection_set=_expand_selections(s.selection_set, op_vars))
        out.append(s)
    return _clone(sel, selections=tuple(out))


def _expand_argument(a: ArgumentNode, op_vars: set[str], count: bool) -> ArgumentNode:
    """A `filter:` argument, or (in `_count(pages: {filter: ...})`) the filter inside one."""
    if not isinstance(a.value, ObjectValueNode):
        return a
    if a.name.value == "filter":
        return _clone(a, value=_expand_object(a.value, op_vars, 0))
    if not count:
        return a
    fields = tuple(
        _clone(f, value=_expand_object(f.value, op_vars, 0))
        if f.name.value == "filter" and isinstance(f.value, ObjectValueNode) else f
        for f in a.value.fields)
    return _clone(a, value=_clone(a.value, fields=fields))


def walk_commits(commits: list[dict], cid: str | None, depth: int | None) -> list[dict]:
    """The commits reachable from `cid` (or from the document's heads) by following at most
    `depth` parent links (None: all), in the given order. Raises NotFoundError when `cid` is
    not among them, ValidationError for a negative depth."""
    if depth is not None and depth < 0:
        raise ValidationError("depth must be >= 0")
    by_cid = {c["cid"]: c for c in commits}
    if cid is not None:
        if cid not in by_cid:
            raise NotFoundError(f"no commit {cid} of this document")
        frontier = [cid]
    else:
        if depth is None:
            return commits
        linked = {p for c in commits for p in c.get("links") or ()}
        frontier = [c["cid"] for c in commits if c["cid"] not in linked]
    keep = set(frontier)
    level = 0
    while frontier and (depth is None or level < depth):
        nxt = []
        for c in frontier:
            for p in by_cid[c].get("links") or ():
                if p in by_cid and p not in keep:
                    keep.add(p)
                    nxt.append(p)
        frontier = nxt
        level += 1
    return [c for c in commits if c["cid"] in keep]


class DatabaseBackend:
    """The operations GraphQLAPI needs, over Collection methods (so the same validation,
    uniqueness, tiers and planner apply as to native calls)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def find(self, collection: str, filter: Any, order: Any, limit: Any, offset: Any,
             cid: str | None) -> list[dict]:
        col = self.db.collection(collection)
        if cid is None:
            return col.find(filter, order, limit, offset)
        # `cid`: the document as it was at that commit (DefraDB's time-travel query).
        raw = cidlib.parse_cid(cid)
        info = self.db.replica.info.get(raw)
        if info is None:
            raise NotFoundError(f"no commit {cid}")
        if info.collection != collection:
            return []
        doc = col.get(info.doc_id, at=cid, include_deleted=True)
        if doc is None or doc["_deleted"] or not compile_filter(filter).match(doc):
            return []
        return [doc]

    def count(self, collection: str, filter: Any) -> int:
        col = self.db.collection(collection)
        if not filter:
            return int(col.count())
        return len(col.find(filter))

    def create(self, collection: str, doc: dict) -> dict:
        col = self.db.collection(collection)
        return col.get(col.create(doc))

    def update(self, collection: str, doc_id: str, fields: dict) -> dict:
        col = self.db.collection(collection)
        col.patch(doc_id, fields)
        return col.get(doc_id)

    def delete(self, collection: str, doc_id: str) -> dict | None:
        col = self.db.collection(collection)
        col.delete(doc_id)
        return col.get(doc_id, include_deleted=True)

    def locate(self, cid: str) -> str:
        """The document id a commit belongs to; NotFoundError if this replica lacks it."""
        info = self.db.replica.info.get(cidlib.parse_cid(cid))
        if info is None:
            raise NotFoundError(f"no commit {cid}")
        return str(info.doc_id)

    def commits(self, doc_id: str) -> list[dict]:
        """Every commit of the document(s) with this id, in any collection: cid, height,
        links (parents), actor, seq, signature (hex signature of the seal covering the
        commit; null until the batch is flushed), collection, docID, schemaVersionId, meta
        (provenance, db/provenance.py)."""
        db = self.db
        check_doc_id(doc_id)
        r = db.replica
        out = []
        for name in db.collections():
            if r.doc(name, doc_id) is None:
                continue
            for c in db.collection(name).history(doc_id, allow_pruned=True):
                if "cid" not in c:
                    continue  # the pruned-history marker
                actor = bytes.fromhex(c["actor"])
                out.append({"cid": c["cid"], "height": c["height"], "links": c["parents"],
                            "actor": c["actor"], "seq": c["seq"],
                            "signature": _seal_signature(r, actor, c["seq"]),
                            "collection": name, "docID": doc_id,
                            "schemaVersionId": c["schema"], "meta": c.get("meta")})
        return out


def _seal_signature(r: Replica, actor: bytes, seq: int) -> str | None:
    for first, last, data in r.seals.get(actor, ()):
        if first <= seq <= last:
            return decode_seal(data).signature.hex()
    return None
