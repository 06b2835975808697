"""Replay the core test vectors (tests/vectors/core.json) through the public Python API.

Depends only on `ostracon`, so the browser runner can load this file into Pyodide and run the
very same scenarios there: parse the JSON text with Python's `json` (not JavaScript's: big
ints and 1.0-vs-1 must survive), then `replay(scenario) == scenario["expected"]`.

Scenario format (all data):
    {"name": str,
     "replicas": [{"name": "a", "seed": hex32, "clock": ms, "random": str, "sink_batch_ops": int?}],
     "steps": [{"op": ..., "replica": name, ...}],
     "expected": <what replay returns>}

Steps (`col` is a collection name, values use the JSON tagging below):
    {"op": "clock", "replica", "set": ms}                    set that replica's wall clock
    {"op": "advance", "replica", "by": ms}                   move it (may be negative)
    {"op": "create", "replica", "col", "doc", "id"?}         -> {"id", "heads"}
    {"op": "update"|"patch", "replica", "col", "id", "doc", "unset"?, "if_version"?, "if_heads"?}
    {"op": "delete", "replica", "col", "id", "if_version"?}  -> {"cid"}
    {"op": "increment", "replica", "col", "id", "field", "by"}
    {"op": "flush", "replica"}
    {"op": "sync", "from", "to"}                             -> {"applied": n}
    {"op": "schema", "replica", "sdl"}                        -> {"versions": {type: version id}}
    {"op": "find", "replica", "col", "filter", "order"?, "limit"?, "after"?: "prev"}
                                     -> {"ids", "cursor"} (after "prev": the last find's cursor)
    {"op": "feed", "replica", "seq": str}                    change-feed cursor "<epoch>.<seq>"
                                                             -> {"events": n}
    {"op": "open", "options": {...}}                         open a throwaway in-memory database
                                                             with these options -> {}
    {"op": "text", "replica", "col", "id", "field", "edits": [[pos, n_delete, insert], ...],
     "cursor"?: pos}                                         -> {"cid", "text", "resolved"?}
        the edits go through `col.text(id, field).splice` (positions in code points) and are
        committed as one block; "cursor" is taken before the edits and resolved after them.
Every step's result also lists the seals written to that replica's storage during the step
("seals": [hex of seal bytes]); a step that raises records {"error": ClassName}.

JSON tagging of values: bytes -> {"$bytes": hex}; ints beyond +-2^53 -> {"$int": "decimal"};
in documents written, {"$text": str} -> ostracon.Text(str) (a collaborative text field).
"""

from __future__ import annotations

from typing import Any

import ostracon
from ostracon.core import cid as cidlib
from ostracon.core.block import KIND_SEAL, open_envelope
from ostracon.core.encoding import encode
from ostracon.crypto import DeterministicRandom
from ostracon.crypto.identity import Identity
from ostracon.storage.memory import MemoryStorage

SAFE_INT = 2**53


def from_json(v: Any) -> Any:
    if type(v) is dict:
        if len(v) == 1 and "$bytes" in v:
            return bytes.fromhex(v["$bytes"])
        if len(v) == 1 and "$int" in v:
            return int(v["$int"])
        if len(v) == 1 and "$text" in v:
            return ostracon.Text(v["$text"])
        return {k: from_json(x) for k, x in v.items()}
    if type(v) is list:
        return [from_json(x) for x in v]
    return v


def to_json(v: Any) -> Any:
    if type(v) is bytes:
        return {"$bytes": v.hex()}
    if type(v) is int and not -SAFE_INT <= v <= SAFE_INT:
        return {"$int": str(v)}
    if type(v) is dict:
        return {k: to_json(x) for k, x in v.items()}
    if type(v) in (list, tuple):
        return [to_json(x) for x in v]
    return v


class _Replica:
    def __init__(self, spec: dict) -> None:
        self.now = spec["clock"]
        self.storage = MemoryStorage()
        self.seen = 0  # storage records already reported
        self.cursor = None  # the last find step's cursor
        self.db = ostracon.open(
            identity=Identity.from_seed(bytes.fromhex(spec["seed"])),
            clock=lambda: self.now, storage=self.storage,
            random_bytes=DeterministicRandom(spec["random"]),
            sink_batch_ops=spec.get("sink_batch_ops", 100))

    def new_seals(self) -> list[str]:
        out = []
        for pos, rec in self.storage.records(self.seen):
            kind, payload = open_envelope(rec)
            if kind == KIND_SEAL:
                out.append(payload.hex())
            self.seen = pos
        return out


def _step(reps: dict, step: dict) -> dict:
    op = step["op"]
    if op == "sync":
        src, dst = reps[step["from"]].db, reps[step["to"]].db
        return {"applied": dst.apply_blocks(src.blocks_since(dst.version_vector()))}
    if op == "open":
        ostracon.open(**from_json(step["options"])).close()
        return {}
    r = reps[step["replica"]]
    if op == "schema":
        return {"versions": r.db.define_schema(step["sdl"])}
    if op == "feed":
        epoch = r.db.changes()[1].rpartition(".")[0]
        return {"events": len(r.db.changes(after=f"{epoch}.{step['seq']}")[0])}
    if op == "find":
        after = r.cursor if step.get("after") == "prev" else None
        docs, r.cursor = r.db.collection(step["col"]).find_page(
            from_json(step["filter"]), step.get("order"), step.get("limit"), after=after)
        return {"ids": [d["_id"] for d in docs], "cursor": r.cursor}
    if op == "clock":
        r.now = step["set"]
        return {}
    if op == "advance":
        r.now += step["by"]
        return {}
    if op == "flush":
        r.db.flush()
        return {}
    col = r.db.collection(step["col"])
    cas = {k: step[k] for k in ("if_version", "if_heads") if k in step}
    if op == "create":
        doc_id = col.create(from_json(step["doc"]), id=step.get("id"))
        return {"id": doc_id, "heads": col.get(doc_id)["_heads"]}
    if op == "update":
        return {"cid": col.update(step["id"], from_json(step["doc"]), **cas)}
    if op == "patch":
        return {"cid": col.patch(step["id"], from_json(step["doc"]), unset=step.get("unset", ()), **cas)}
    if op == "delete":
        return {"cid": col.delete(step["id"], **cas)}
    if op == "increment":
        return {"cid": col.increment(step["id"], step["field"], from_json(step["by"]))}
    if op == "text":
        t = col.text(step["id"], step["field"])
        cur = t.cursor(step["cursor"]) if "cursor" in step else None
        for pos, n, ins in step["edits"]:
            t.splice(pos, n, ins)
        out = {"cid": t.commit(), "text": str(t)}
        if cur is not None:
            out["resolved"] = t.resolve(cur)
        return out
    raise ValueError(f"unknown step {op!r}")


def replay(scenario: dict) -> dict:
    """Run one scenario; returns {"steps": [...], "final": {replica: {...}}}."""
    reps = {spec["name"]: _Replica(spec) for spec in scenario["replicas"]}
    results = []
    for step in scenario["steps"]:
        try:
            out = _step(reps, step)
        except ostracon.OstraconError as exc:
            out = {"error": type(exc).__name__}
        for name in sorted(reps):
            seals = reps[name].new_seals()
            if seals:
                out.setdefault("seals", {})[name] = seals
        results.append(out)
    final = {}
    for name, r in sorted(reps.items()):
        db = r.db
        docs = {}
        for col_name in db.collections():
            found, cursor = [], None
            while True:
                page, cursor = db.collection(col_name).scan(after=cursor, include_deleted=True)
                # Listed under their collection: `_collection` would only repeat the key.
                found.extend({k: v for k, v in d.items() if k != "_collection"} for d in page)
                if cursor is None:
                    break
            docs[col_name] = to_json(found)
        final[name] = {"state_hash": db.state_hash(), "heads": db.heads(),
                       "version_vector": db.version_vector(), "docs": docs}
    return {"steps": results, "final": final}


def replay_encoding(case: dict) -> dict:
    """An encoding vector: canonical bytes and CID of a value."""
    data = encode(from_json(case["value"]))
    return {"hex": data.hex(), "cid": cidlib.format_cid(cidlib.compute(data))}
