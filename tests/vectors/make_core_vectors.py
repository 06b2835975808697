"""Regenerate tests/vectors/core.json:  .venv/bin/python tests/vectors/make_core_vectors.py

The scenarios below are data (operations, fixed keys, fixed clocks, fixed randomness). This
script replays them natively (tests/vectors/replay.py) and stores what came out as the
expected results. Regenerate only on purpose (a format change): the diff of core.json is
the list of every CID, seal and state hash that changed.
"""

from __future__ import annotations

import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from replay import replay, replay_encoding, to_json  # noqa: E402

T0 = 1_700_000_000_000
SEED_A = bytes(range(32)).hex()
SEED_B = bytes(range(1, 33)).hex()
SEED_C = bytes(range(2, 34)).hex()


def rep(name, seed, clock=T0, **kw):
    return {"name": name, "seed": seed, "clock": clock, "random": f"vectors/{name}", **kw}


def s(op, replica="a", **kw):
    return {"op": op, "replica": replica, **kw}


SCENARIOS = [
    {
        "name": "single writer: every operation",
        "replicas": [rep("a", SEED_A)],
        "steps": [
            s("create", col="todos", id="t1", doc={"title": "write vectors", "done": False, "n": 0}),
            s("create", col="todos", doc={"generated": True}),
            s("advance", by=1000),
            s("patch", col="todos", id="t1", doc={"done": True}),
            s("increment", col="todos", id="t1", field="n", by=2),
            s("increment", col="todos", id="t1", field="n", by=0.5),
            s("patch", col="todos", id="t1", doc={}, unset=["done"]),
            s("patch", col="todos", id="t1", doc={"x": 1}, if_version=1),   # ConflictError
            s("patch", col="todos", id="t1", doc={"x": 1}, if_version=5),
            s("update", col="todos", id="t1", doc={"title": "replaced"}),
            s("flush"),
            s("delete", col="todos", id="t1"),
            s("patch", col="todos", id="t1", doc={"x": 2}),                  # NotFoundError
            s("create", col="todos", id="t1", doc={"again": True}),
            s("advance", by=-5000),                                           # wall clock steps back
            s("patch", col="todos", id="t1", doc={"after_step_back": 1}),
            s("create", col="notes", id="n1", doc={}),
            s("flush"),
        ],
    },
    {
        "name": "values: big ints, bytes, unicode, nesting, floats",
        "replicas": [rep("a", SEED_A)],
        "steps": [
            s("create", col="v", id="values", doc={
                "big": to_json(2**100), "neg": to_json(-(2**71)), "u64": to_json(2**64 - 1),
                "i64": to_json(-(2**63)), "bytes": {"$bytes": "00ff10"}, "float": 0.1, "neg0": -0.0,
                "unicode": "héllo 日本 👩‍💻", "nested": {"z": [1, [2, {"b": None, "a": True}]], "a": {}},
                "empty_list": [], "ü": "non-ascii key"}),
            s("create", col="v", id="id with spaces/and:punct ü", doc={"k": "v"}),
            s("flush"),
        ],
    },
    {
        "name": "sink batches: size trigger every 3 writes, then the time trigger",
        "replicas": [rep("a", SEED_A, sink_batch_ops=3)],
        "steps": [s("create", col="c", id=f"d{i}", doc={"i": i}) for i in range(7)] + [
            s("advance", by=5000),
            s("create", col="c", id="late", doc={}),
            s("flush"),
        ],
    },
    {
        "name": "two replicas: concurrent edits, same clock, counters",
        "replicas": [rep("a", SEED_A), rep("b", SEED_B)],
        "steps": [
            s("create", col="t", id="d", doc={"title": "start", "n": 0, "keep": 1}),
            s("flush"),
            {"op": "sync", "from": "a", "to": "b"},
            s("patch", col="t", id="d", doc={"title": "from a"}),
            s("patch", "b", col="t", id="d", doc={"title": "from b"}),   # same wall ms: actor breaks the tie
            s("increment", col="t", id="d", field="n", by=1),
            s("increment", "b", col="t", id="d", field="n", by=10),
            s("create", "b", col="t", id="only-b", doc={"by": "b"}),
            s("flush"),
            s("flush", "b"),
            {"op": "sync", "from": "a", "to": "b"},
            {"op": "sync", "from": "b", "to": "a"},
            s("advance", by=1),
            s("patch", col="t", id="d", doc={"merged": True}),
            s("flush"),
            {"op": "sync", "from": "a", "to": "b"},
            {"op": "sync", "from": "b", "to": "a"},
        ],
    },
    {
        "name": "two replicas: delete against a later concurrent write",
        "replicas": [rep("a", SEED_A), rep("b", SEED_B)],
        "steps": [
            s("create", col="t", id="d", doc={"a": 1, "b": 1}),
            s("flush"),
            {"op": "sync", "from": "a", "to": "b"},
            s("delete", col="t", id="d"),
            s("advance", "b", by=10),
            s("patch", "b", col="t", id="d", doc={"b": 2}),               # concurrent: the delete wins
            s("create", col="t", id="e", doc={"x": 1}),
            s("flush"),
            s("flush", "b"),
            {"op": "sync", "from": "a", "to": "b"},
            {"op": "sync", "from": "b", "to": "a"},
            s("delete", "b", col="t", id="e"),
            s("flush", "b"),
            {"op": "sync", "from": "b", "to": "a"},
        ],
    },
    {
        "name": "three replicas: relay through a middle replica, skewed clocks",
        "replicas": [rep("a", SEED_A), rep("b", SEED_B, clock=T0 - 60_000), rep("c", SEED_C, clock=T0 + 60_000)],
        "steps": [
            s("create", col="t", id="d", doc={"v": "a"}),
            s("flush"),
            {"op": "sync", "from": "a", "to": "b"},
            {"op": "sync", "from": "b", "to": "c"},
            s("patch", "b", col="t", id="d", doc={"v": "b (clock behind, but causally later)"}),
            s("patch", "c", col="t", id="d", doc={"w": "c"}),
            s("flush", "b"),
            s("flush", "c"),
            {"op": "sync", "from": "b", "to": "c"},
            {"op": "sync", "from": "c", "to": "a"},
            {"op": "sync", "from": "a", "to": "b"},
        ],
    },
    {
        "name": "runtime independence: the DateTime grammar",
        "replicas": [rep("a", SEED_A)],
        "steps": [s("schema", sdl="type Ev { at: DateTime }")] + [
            s("create", col="Ev", id=f"d{i}", doc={"at": v}) for i, v in enumerate([
                "2020-01-01", "2020-02-29", "2021-02-29", "2020-01-01T24:00", "2020-01-01T23:59:59",
                "2020-01-01T10:00:60", "2020-01-01T10:00:00.123456789Z", "2020-01-01T10:00:00.1234567890",
                "2020-01-01 10:00+05:30", "2020-01-01T10:00+0530", "2020-01-01T10:00+05", "2020-01-01t10:00",
                "2020-01-01T10:00z", "\u0662\u0660\u0662\u0660-01-01", "２０２０-01-01", "2020-W01-1",
                "2020-001", "20200101", "0000-01-01", "9999-12-31T23:59", "2020-1-01", "2020-01-01T",
                "2020-01-01T10:00:00.", "2020-01-01T10:00:00,5", "2020-01-01T10:00+24:00",
                "2020-01-01T10:00:00.123+00:00",
            ])] + [s("flush")],
    },
    {
        "name": "runtime independence: _ilike folds ASCII letters only",
        "replicas": [rep("a", SEED_A)],
        "steps": [s("create", col="w", id=f"w{i}", doc={"name": v}) for i, v in enumerate([
            "ABC", "abc", "Straße", "STRASSE", "\ua7cbx", "\u0264x", "\u01c4", "\u01c6", "\u212a", "k",
            "\u017f", "S", "\u0130", "i", "\u03a3", "\u03c3", "\u03c2",
        ])] + [s("find", col="w", filter={"name": {op: pat}}, order="name") for op, pat in [
            ("_ilike", "abc"), ("_ilike", "\u0264%"), ("_ilike", "\ua7cb%"), ("_ilike", "K"),
            ("_ilike", "s"), ("_ilike", "strasse"), ("_ilike", "stra%e"), ("_ilike", "\u03c3"),
            ("_ilike", "I"), ("_ilike", "\u01c5"), ("_nilike", "a%"), ("_nilike", "%\u0264%"),
            ("_like", "ABC"), ("_ilike", "_"),
        ]],
    },
    {
        "name": "runtime independence: find_page cursors from canonical bytes",
        "replicas": [rep("a", SEED_A)],
        "steps": [s("create", col="p", id=f"p{i}", doc={"\U0001fae8": v, "t": "\U0001fae8" * i})
                  for i, v in enumerate(["\U0001fae8", "\U000113c2", "a", "\u0378", "b\U0001fae9"])] + [
            s("find", col="p", filter={}, order=["-\U0001fae8"], limit=2),
            s("find", col="p", filter={}, order=["-\U0001fae8"], limit=2, after="prev"),
            s("find", col="p", filter={}, order=["-\U0001fae8"], limit=2, after="prev"),
            s("find", col="p", filter={"t": {"_like": "\U0001fae8%"}}, order=["t", "\U0001fae8"], limit=3),
            s("find", col="p", filter={"t": {"_like": "\U0001fae8%"}}, order=["t", "\U0001fae8"], limit=3,
              after="prev"),
        ],
    },
    {
        "name": "runtime independence: ASCII digits, option bounds, no Unicode normalisation, -0.0",
        "replicas": [rep("a", SEED_A)],
        "steps": [
            s("create", col="n", id="caf\u00e9", doc={"v": "caf\u00e9", "z": -0.0, "i": 0}),
            s("create", col="n", id="cafe\u0301", doc={"v": "cafe\u0301", "z": 0.0, "i": -0}),
            s("find", col="n", filter={"v": {"_eq": "caf\u00e9"}}),
            s("find", col="n", filter={"z": {"_eq": 0}}, order="_id"),
            s("create", col="n", id="\U000113c2\U000113c2", doc={"v": "\U000113c2\U000113c2"}),
            s("flush"),
        ] + [s("feed", seq=q) for q in ["1", "0", "\u0663", "\uff13", "1_0", "+1", " 1", "01", "-1", "", "3",
                                          "99", "1" * 30]] + [
            {"op": "open", "options": {"feed_retention": to_json(v)}} for v in [2**31, 2**31 - 1, 2**63, 10, 0, True]
        ],
    },
]

def text_edits(seed: str, n: int, length: int) -> list:
    """A seeded edit script (splices) for a text of `length` code points: typing, deletes,
    surrogate-pair emoji and combining marks."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if length and rng.random() < 0.3:
            pos = rng.randrange(length)
            k = rng.randint(1, min(3, length - pos))
            out.append([pos, k, ""])
            length -= k
        else:
            ins = rng.choice(["a", "bc", "😀", "e\u0301", "日本", " ", "🇫🇷"])
            out.append([rng.randint(0, length), 0, ins])
            length += len(ins)
    return out


def text_step(replica, edits, **kw):
    return s("text", replica, col="notes", id="n1", field="body", edits=edits, **kw)


SCENARIOS.append({
    "name": "two replicas: collaborative text, concurrent typing and seeded edit scripts",
    "replicas": [rep("a", SEED_A), rep("b", SEED_B)],
    "steps": [
        s("create", col="notes", id="n1", doc={"title": "note", "body": {"$text": "Hello"}}),
        s("flush"),
        {"op": "sync", "from": "a", "to": "b"},
        text_step("a", [[5, 0, " from A"]], cursor=5),              # both type at the end
        text_step("b", [[5, 0, " from B"]], cursor=0),
        s("flush"),
        s("flush", "b"),
        {"op": "sync", "from": "a", "to": "b"},
        {"op": "sync", "from": "b", "to": "a"},
        s("advance", by=1000),
        text_step("a", text_edits("vectors/text/a", 40, 19)),
        s("advance", "b", by=1000),
        text_step("b", text_edits("vectors/text/b", 40, 19)),
        s("patch", "b", col="notes", id="n2-missing", doc={"x": 1}),  # NotFoundError
        s("flush"),
        s("flush", "b"),
        {"op": "sync", "from": "b", "to": "a"},
        {"op": "sync", "from": "a", "to": "b"},
    ],
})

ENCODING = [to_json(v) for v in [
    None, True, False, 0, 1, -1, 127, 128, -32, -33, 255, 256, 65536, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
    -(2**63), 2**64, -(2**63) - 1, 2**100, -(2**71), 1.5, -0.0, 0.1, 1e300, "", "a", "héllo", "👩‍💻",
    "x" * 40, b"", b"\x00\xff", [], [1, [2, [3]]], {}, {"b": 1, "a": 2, "é": 3, "z": {"y": 1, "x": 2}},
]]


def build() -> dict:
    scenarios = []
    for sc in SCENARIOS:
        sc = dict(sc)
        sc["expected"] = replay(sc)
        scenarios.append(sc)
    encoding = [{"value": v, **replay_encoding({"value": v})} for v in ENCODING]
    return {
        "format": "ostracon-core-vectors",
        "version": 1,
        "regenerate": ".venv/bin/python tests/vectors/make_core_vectors.py",
        "notes": "Parse with Python's json (big ints, 1.0 vs 1); see tests/vectors/replay.py.",
        "encoding": encoding,
        "scenarios": scenarios,
    }


def main() -> None:
    out = os.path.join(HERE, "core.json")
    data = build()
    # the states of each multi-replica scenario must have converged, or the vector is useless
    for sc in data["scenarios"]:
        finals = sc["expected"]["final"]
        if len(finals) > 1 and sc["steps"][-1]["op"] == "sync":
            hashes = {f["state_hash"] for f in finals.values()}
            print(f"{sc['name']}: {len(hashes)} distinct state hash(es) across {len(finals)} replicas")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    print(f"wrote {out}: {len(data['scenarios'])} scenarios, {len(data['encoding'])} encoding cases")


if __name__ == "__main__":
    main()
