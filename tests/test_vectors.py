"""Replay tests/vectors/core.json natively (the browser runner replays the same file).

Regenerate after a deliberate format change: .venv/bin/python tests/vectors/make_core_vectors.py
"""

import importlib.util
import json
import os

import pytest

HERE = os.path.join(os.path.dirname(__file__), "vectors")
_spec = importlib.util.spec_from_file_location("ostracon_core_vector_replay", os.path.join(HERE, "replay.py"))
replay_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(replay_mod)

with open(os.path.join(HERE, "core.json"), encoding="utf-8") as f:
    VECTORS = json.load(f)


def test_file_header():
    assert VECTORS["format"] == "ostracon-core-vectors" and VECTORS["version"] == 1
    assert len(VECTORS["scenarios"]) >= 5
    assert any(len(s["replicas"]) >= 2 for s in VECTORS["scenarios"])


@pytest.mark.parametrize("case", VECTORS["encoding"], ids=lambda c: json.dumps(c["value"])[:40])
def test_encoding_vector(case):
    assert replay_mod.replay_encoding(case) == {"hex": case["hex"], "cid": case["cid"]}


@pytest.mark.parametrize("scenario", VECTORS["scenarios"], ids=lambda s: s["name"])
def test_scenario(scenario):
    got = replay_mod.replay(scenario)
    want = scenario["expected"]
    # step by step first, so a failure names the first step that differs
    for i, (step, g, w) in enumerate(zip(scenario["steps"], got["steps"], want["steps"], strict=False)):
        assert g == w, f"step {i} {step}"
    assert got == want


@pytest.mark.parametrize("scenario", [s for s in VECTORS["scenarios"] if len(s["replicas"]) > 1],
                         ids=lambda s: s["name"])
def test_multi_replica_scenarios_converge(scenario):
    finals = scenario["expected"]["final"].values()
    assert len({f["state_hash"] for f in finals}) == 1
    assert len({tuple(f["heads"]) for f in finals}) == 1


def test_vectors_pin_seals_and_commits():
    steps = [r for s in VECTORS["scenarios"] for r in s["expected"]["steps"]]
    assert sum(len(v) for r in steps for v in r.get("seals", {}).values()) >= 10
    assert sum(1 for r in steps if "cid" in r) >= 10
    assert any(r.get("error") == "ConflictError" for r in steps)


def test_json_tagging_round_trip():
    v = {"b": b"\x00", "big": 2**100, "small": 5, "l": [2**60, -(2**60)], "f": 1.0}
    assert replay_mod.from_json(json.loads(json.dumps(replay_mod.to_json(v)))) == v


def test_pinned_p256_store_verifies():
    """tests/vectors/p256_store.json (made natively once) verifies here; the browser
    runtimes check the same file (e2e/runtime_checks.py `p256_store`)."""
    import p256_store

    got = p256_store.verify_store(p256_store.load_vector())
    assert got["seal_algorithms"] == ["ed25519", "p256"] and got["blocks"] == 7


def test_a_fresh_p256_store_verifies_in_a_second_database():
    import p256_store

    store = p256_store.make_store()
    assert p256_store.verify_store(store)["refused"] == ["flipped signature bit", "high-S twin"]
