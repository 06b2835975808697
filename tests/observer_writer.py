"""A writer in its own process for the observer tests (tests/test_db_observer.py,
tests/test_rest.py): it opens a file database and obeys one command per stdin line,
answering "ok" (or "error <message>") on stdout once the command is done.

Commands: `put ID JSON` (create or replace document ID in collection "pages" with the
JSON object's fields; not yet durable), `flush`, `compact`, `exit`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def spawn(path: str) -> subprocess.Popen:
    """Start a writer child on `path` (the repository's py/ first on its path)."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(here, "..", "py")] + sys.path))
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def command(child: subprocess.Popen, line: str) -> None:
    """Send one command and wait for its answer (AssertionError on an error answer)."""
    from polling import read_line

    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()
    answer = read_line(child.stdout, f"answer to {line!r}")
    assert answer == "ok", answer


def stop(child: subprocess.Popen) -> None:
    command(child, "exit")
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-2000:]


def main() -> None:
    import ostracon

    # A long interval: only `flush` and `compact` make writes durable (the tests decide).
    db = ostracon.open(sys.argv[1], sink_interval_ms=3_600_000)
    pages = db.collection("pages")
    for line in sys.stdin:
        op, _, rest = line.strip().partition(" ")
        try:
            if op == "put":
                doc_id, _, data = rest.partition(" ")
                pages.upsert(doc_id, json.loads(data))
            elif op == "flush":
                db.flush()
            elif op == "compact":
                db.compact()
            elif op == "exit":
                db.close()
                print("ok", flush=True)
                return
            else:
                raise ValueError(f"unknown command {op!r}")
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            print(f"error {type(exc).__name__}: {exc}", flush=True)
            continue
        print("ok", flush=True)


if __name__ == "__main__":
    main()
