"""Document RPCs of the worker host: the collection, query, index, schema and GraphQL calls of
web/ostracon.js. Mixed into `Host` (host.py), which supplies `_db()`; every method's first
argument is the collection name where it acts on one, and options arrive as a plain JS
object converted to a dict (`_opts`)."""

from __future__ import annotations

import sys
from typing import Any

from ostracon.core.errors import OstraconError, ValidationError

from . import bridge


def _opts(v: Any) -> dict:
    if v is None:
        return {}
    if type(v) is not dict:
        raise ValidationError("options must be an object")
    return v


def _cas(o: dict) -> dict:
    return {"if_version": o.get("ifVersion"), "if_heads": o.get("ifHeads"), "where": o.get("where")}


def _renumber(exc: OstraconError, position: int) -> None:
    """Name the refused op of a batch by `position` (its place in the caller's array), in
    `op_index` and in the `op N` that begins its message (Database.send_many)."""
    n, exc.op_index = exc.op_index, position
    head = f"op {n}"
    if exc.args and type(exc.args[0]) is str and exc.args[0].startswith(head) \
            and exc.args[0][len(head):len(head) + 1] in (":", " "):
        exc.args = (f"op {position}{exc.args[0][len(head):]}", *exc.args[1:])


class DocumentRpc:
    """Mixed into Host: `self._db()` gives the open Database (ClosedError when closed)."""

    def _db(self) -> Any:
        raise NotImplementedError

    def _col(self, name: Any) -> Any:
        return self._db().collection(name)

    def rpc_create(self, col: str, doc: Any, id: Any = None, opts: Any = None) -> str:
        """`{resume: true}`: an existing document with this id counts as created (a call
        re-sent after a tab handover, see web/tabs.js)."""
        c = self._col(col)
        if id is not None and _opts(opts).get("resume") is True and c.get(id) is not None:
            return id
        return c.create(doc, id=id)

    def rpc_createMany(self, col: str, docs: Any, ids: Any = None, opts: Any = None) -> list:
        """Atomic: every document is created or none is (`Database.send_many`; a refused
        one raises with `op_index` = its position in `docs`, and its message says `op N:`
        with that position). `ids` (optional) names each document; with `{resume: true}`
        the ones that exist already count as created."""
        if type(docs) is not list:
            raise ValidationError("createMany needs an array of documents")
        if ids is not None and (type(ids) is not list or len(ids) != len(docs)):
            raise ValidationError("createMany: ids must be an array as long as docs")
        c = self._col(col)
        resume = _opts(opts).get("resume") is True
        out: list = [None if ids is None else ids[i] for i in range(len(docs))]
        ops, where = [], []
        for i, d in enumerate(docs):
            if resume and out[i] is not None and c.get(out[i]) is not None:
                continue
            ops.append({"collection": col, "kind": "create", "doc": d, "id": out[i]})
            where.append(i)
        try:
            sent = self._db().send_many(ops)
        except OstraconError as exc:
            if exc.op_index is not None:   # documents skipped by `resume` shift the positions
                _renumber(exc, where[exc.op_index])
            raise
        for i, doc_id in zip(where, sent, strict=True):
            out[i] = doc_id
        return out

    def rpc_get(self, col: str, id: str, at: Any = None) -> Any:
        return self._col(col).get(id, at=at)

    def rpc_getMany(self, col: str, ids: Any) -> list:
        return self._col(col).get_many(ids)

    def rpc_scan(self, col: str, opts: Any = None) -> dict:
        o = _opts(opts)
        kw = {k: o[k] for k in ("prefix", "after", "limit") if o.get(k) is not None}
        if o.get("includeDeleted") is True:  # deleted documents too (their history is kept)
            kw["include_deleted"] = True
        docs, cursor = self._col(col).scan(**kw)
        return {"docs": docs, "next": cursor}

    def rpc_find(self, col: str, filter: Any = None, opts: Any = None) -> list:
        o = _opts(opts)
        return self._col(col).find(filter, order=o.get("order"), limit=o.get("limit"))

    def rpc_findPage(self, col: str, filter: Any = None, opts: Any = None) -> dict:
        """{docs, next}: one page of `find`; pass `next` back as {after} for the following."""
        o = _opts(opts)
        docs, cursor = self._col(col).find_page(filter, order=o.get("order"), limit=o.get("limit"),
                                                offset=o.get("offset"), after=o.get("after"))
        return {"docs": docs, "next": cursor}

    def rpc_explain(self, col: str, filter: Any = None, opts: Any = None) -> dict:
        o = _opts(opts)
        return self._col(col).explain(filter, order=o.get("order"), limit=o.get("limit"), offset=o.get("offset"))

    def rpc_createIndex(self, col: str, fields: Any, opts: Any = None) -> str:
        o = _opts(opts)
        return self._col(col).create_index(fields, unique=o.get("unique") is True, name=o.get("name"))

    def rpc_dropIndex(self, col: str, name: Any) -> None:
        self._col(col).drop_index(name)

    def rpc_indexes(self, col: str) -> list:
        return self._col(col).indexes()

    def rpc_setSchema(self, col: str, sdl: Any) -> str:
        return self._col(col).set_schema(sdl)

    def rpc_defineSchema(self, sdl: Any) -> dict:
        return self._db().define_schema(sdl)

    def rpc_schemaVersions(self) -> dict:
        return self._db().schema_versions()

    def rpc_schemaHistory(self, name: Any) -> list:
        return self._db().schema_history(name)

    def rpc_graphql(self, query: Any, variables: Any = None, opts: Any = None) -> dict:
        """A GraphQL request ({data, errors}); graphql-core is loaded on the first call."""
        o = _opts(opts)
        db = self._db()
        self.load_graphql()
        return db.graphql(query, variables, allow_mutations=o.get("allowMutations", True) is not False,
                          operation_name=o.get("operationName"))

    def load_graphql(self) -> None:
        """graphql-core is in the bundle's lock but not loaded at start (it is only needed by
        GraphQL requests): load it now, blocking on Pyodide's loadPackage (JSPI)."""
        try:
            import graphql  # noqa: F401
        except ImportError:
            if sys.platform != "emscripten":
                raise
            import pyodide_js  # type: ignore[import-not-found]

            bridge.run_blocking(pyodide_js.loadPackage("graphql-core"))

    def rpc_count(self, col: str) -> int:
        return self._col(col).count()

    def rpc_update(self, col: str, id: str, doc: Any, opts: Any = None) -> str:
        return self._col(col).update(id, doc, **_cas(_opts(opts)))

    def rpc_patch(self, col: str, id: str, fields: Any, opts: Any = None) -> str:
        o = _opts(opts)
        return self._col(col).patch(id, fields, unset=o.get("unset") or (), **_cas(o))

    def rpc_delete(self, col: str, id: str, opts: Any = None) -> str:
        return self._col(col).delete(id, **_cas(_opts(opts)))

    def rpc_increment(self, col: str, id: str, field: str, by: Any = 1) -> str:
        return self._col(col).increment(id, field, 1 if by is None else by)

    def rpc_history(self, col: str, id: str) -> list:
        return self._col(col).history(id)

    def rpc_blame(self, col: str, id: str) -> dict:
        return self._col(col).blame(id)

