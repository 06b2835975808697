"""`ostracon identity` and `ostracon import --algorithm` (identity_cli.py): a database's
signing identity created with the chosen algorithm, kept, shown, and used by every open."""

from __future__ import annotations

import json
import os

import ostracon
from ostracon.cli import main
from ostracon.crypto.identity import Identity


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_new_p256_identity_is_written_shown_and_used_by_the_database(tmp_path, capsys):
    path = str(tmp_path / "db")
    code, out, _ = run(capsys, "identity", "new", path, "--algorithm", "p256")
    assert code == 0 and "algorithm   p256" in out
    key = os.path.join(path, "identity.key")
    assert os.stat(key).st_mode & 0o777 == 0o600 and os.stat(path).st_mode & 0o777 == 0o700
    ident = Identity.load(key)
    assert ident.algorithm == "p256" and f"actor       {ident.actor_hex}" in out
    with ostracon.open(path) as db:
        db.collection("c").create({"v": 1}, id="a")
        db.flush()
        [commit] = db.collection("c").history("a")
        assert commit["actor"] == ident.actor_hex and db.verify() == []
    code, shown, _ = run(capsys, "identity", "show", path)
    assert code == 0 and shown == out
    code, out, _ = run(capsys, "verify", path)
    assert code == 0 and out.startswith("OK")
    code, out, _ = run(capsys, "log", path)
    assert f"by p256:{ident.actor_hex[6:18]} " in out


def test_an_existing_identity_is_never_replaced(tmp_path, capsys):
    path = str(tmp_path / "db")
    assert run(capsys, "identity", "new", path)[0] == 0
    before = open(os.path.join(path, "identity.key")).read()
    code, _, err = run(capsys, "identity", "new", path, "--algorithm", "p256")
    assert code == 2 and "already exists" in err and "Traceback" not in err
    assert open(os.path.join(path, "identity.key")).read() == before
    assert json.loads(before).keys() == {"actor", "format", "seed", "version"}  # Ed25519: no algorithm key


def test_show_without_an_identity_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run(capsys, "identity", "show", str(tmp_path / "none"))
    assert code == 2 and "no identity file" in err and err.count("\n") == 1


def test_import_creates_a_p256_database_and_refuses_to_switch_algorithms(tmp_path, capsys):
    src = tmp_path / "in.ndjson"
    src.write_text(json.dumps({"collection": "c", "doc": {"_id": "a", "v": 1}}) + "\n")
    path = str(tmp_path / "db")
    code, _, err = run(capsys, "import", path, str(src), "--algorithm", "p256")
    assert code == 0, err
    assert Identity.load(os.path.join(path, "identity.key")).algorithm == "p256"
    assert run(capsys, "verify", path)[0] == 0
    code, _, err = run(capsys, "import", path, str(src), "--algorithm", "ed25519")
    assert code == 2 and "keeps the identity it was created with" in err
    assert run(capsys, "import", path, str(src))[0] == 0  # without --algorithm: the database's own
