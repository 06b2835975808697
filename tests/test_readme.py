"""README.md "Python in one minute" runs as printed (in a fresh directory, as a script)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

README = pathlib.Path(__file__).parent.parent / "README.md"


def python_in_one_minute() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python in one minute", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_python_in_one_minute_runs_as_printed(tmp_path):
    script = tmp_path / "minute.py"
    script.write_text(python_in_one_minute(), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(pathlib.Path(__file__).parent.parent / "py")] + sys.path))
    done = subprocess.run([sys.executable, "-W", "error::ResourceWarning", str(script)], cwd=tmp_path,
                          env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert (tmp_path / "notes.db").is_dir()
