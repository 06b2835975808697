"""The Notes app's independent verifier (web/demo/verify.js, plain JS + WebCrypto) on blocks
written natively: Ed25519 and ECDSA P-256 authors verify, a flipped signature bit does not.

The verifier is a second implementation of docs/CRYPTO.md's seal rules; agreeing with the
Python engine on both algorithms (and disagreeing on a forged seal) is what it is for.
"""

from __future__ import annotations

import base64

import pytest

import ostracon
from notes_app import APP, server, web_dir  # noqa: F401 (fixtures)
from ostracon.crypto.identity import Identity

VERIFY = """async (list) => {
    const { verifyAll } = await import(new URL("verify.js", location.href).href);
    return await verifyAll(list.map((s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0))));
}"""


def _envelopes(tmp_path, algorithm: str) -> list[str]:
    with ostracon.open(str(tmp_path / algorithm), identity=Identity.generate(algorithm=algorithm)) as db:
        notes = db.collection("notes")
        for i in range(4):
            notes.create({"title": f"note {i}", "n": i})
        notes.patch(notes.find()[0]["_id"], {"n": 99})
        db.flush()
        return [base64.b64encode(e).decode() for e in db.blocks_since({})]


@pytest.mark.parametrize("algorithm", ["ed25519", "p256"])
def test_verifier_agrees_with_the_engine_on_both_algorithms(browser, server, tmp_path, algorithm):  # noqa: F811
    envs = _envelopes(tmp_path, algorithm)
    page = browser.new_page()
    page.goto(server.url + APP + "manifest.webmanifest")
    good = page.evaluate(VERIFY, envs)
    assert good["problems"] == [] and good["blocks"] == 5 and good["unsealed"] == 0, good
    forged = bytearray(base64.b64decode(envs[-1]))  # the last envelope is the seal
    forged[-5] ^= 1                                  # a bit of its signature
    bad = page.evaluate(VERIFY, envs[:-1] + [base64.b64encode(bytes(forged)).decode()])
    assert any("signature does not verify" in p for p in bad["problems"]), bad
    page.close()
