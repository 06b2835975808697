"""The relay abuse suite at bench size: figures for docs/RELAY.md ("Under attack").

    PYTHONPATH=py python bench/relay_abuse.py [--write docs/RELAY.md] [--quick]

Each attack of tests/relay_attacks.py runs against a fresh relay process (default limits
unless the row says otherwise); the table lists what the attacker got, what was refused or
held back, and how long an honest client's sync round took meanwhile. Timings are measured
here only, never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "py"))

import relay_attacks as A  # noqa: E402
from relay_process import RelayProcess  # noqa: E402

MiB = 1024 * 1024
BEGIN, END = "<!-- abuse-figures:begin -->", "<!-- abuse-figures:end -->"


def _relay(tmp: Path, name: str, *flags: str) -> RelayProcess:
    d = tmp / name
    d.mkdir()
    return RelayProcess(["--mailbox", f"sqlite:{d / 'mailbox.sqlite'}", *flags], str(d / "relay.log")).start()


def run(quick: bool) -> list[tuple[str, str, dict]]:
    size = 10 if quick else 1
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)

        def scenario(name, flags, fn, *args):
            relay = _relay(tmp, name, *flags)
            work = tmp / (name + "-work")
            work.mkdir()
            try:
                out = asyncio.run(fn(relay, work, *args) if fn not in (A.saturation, A.junk_rooms,
                                                                       A.reconnect_flood)
                                  else fn(relay, *args))
            finally:
                relay.kill()
            rows.append((name, " ".join(flags) or "defaults", out))
            print(json.dumps(out), flush=True)

        scenario("idle-tcp", (), A.idle_tcp, 256 // (size if quick else 1), 5)
        scenario("idle-ws", (), A.idle_websockets, 1000 // size)
        scenario("saturation", ("--max-connections", "200"), A.saturation, 200)
        scenario("big-upload", (), A.big_upload, 100 // size)
        scenario("big-upload-roomy", ("--mailbox-max-room-bytes", str(256 * MiB)), A.big_upload, 100 // size)
        scenario("junk-rooms", (), A.junk_rooms, 5000 // size)
        scenario("flood", ("--rate-bytes-per-s", "off", "--rate-frames-per-s", "off"),
                 A.flood_with_stalled_reader, 2000 // size)
        scenario("garbage", (), A.garbage, 10000 // size)
        scenario("reconnect-flood", ("--rate-bytes-per-s", "1000000", "--rate-bytes-burst", "2000000",
                                     "--max-frame-bytes", "65536", "--send-queue-bytes", str(MiB)),
                 A.reconnect_flood, 5.0, 1_000_000, 2_000_000)
    return rows


def table(rows) -> str:
    out = ["| attack | relay flags | what happens now (figures) |", "|---|---|---|"]
    for _name, flags, fig in rows:
        attack = fig.pop("attack")
        cells = ", ".join(f"{k}={v}" for k, v in fig.items())
        out.append(f"| {attack} | `{flags}` | {cells} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", help="replace the figures block of this markdown file")
    ap.add_argument("--quick", action="store_true", help="a tenth of the bench sizes")
    args = ap.parse_args()
    text = table(run(args.quick))
    print(text)
    if args.write:
        doc = Path(args.write).read_text()
        block = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in doc:
            doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: block, doc, flags=re.S)
        else:
            doc = doc.rstrip() + "\n\n" + block + "\n"
        Path(args.write).write_text(doc)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(HERE.parent / "py"))
    sys.exit(main())
