"""Write ``file.gz`` (and ``file.br`` when the ``brotli`` package is installed) beside every
compressible file of a built web app, so StaticFiles can send them precompressed.

``python -m ostracon.relay.precompress DIR``. Output is deterministic (gzip header mtime 0, no
file name) and only rewritten when the source is newer, so repeated builds are cheap.
"""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

#: Types worth compressing: text and WebAssembly. Archives and images are already compressed.
COMPRESSIBLE = frozenset({".html", ".js", ".mjs", ".css", ".json", ".map", ".webmanifest", ".wasm", ".py",
                          ".txt", ".svg", ".tar", ".data"})
#: Smaller files gain nothing worth a second request path.
MIN_BYTES = 1024


def _write_if_smaller(target: Path, data: bytes, original: int) -> bool:
    if len(data) >= original:
        return False
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return True


def precompress(root: str | Path) -> int:
    """Compress every eligible file under ``root``; return how many siblings were written."""
    try:
        import brotli  # type: ignore[import-untyped]
    except ImportError:  # optional: gzip alone still serves every browser
        brotli = None
    written = 0
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file() or path.suffix.lower() not in COMPRESSIBLE:
            continue
        st = path.stat()
        if st.st_size < MIN_BYTES:
            continue
        data = None
        for suffix in (".gz", ".br"):
            if suffix == ".br" and brotli is None:
                continue
            target = path.with_name(path.name + suffix)
            if target.exists() and target.stat().st_mtime_ns >= st.st_mtime_ns:
                continue
            data = data if data is not None else path.read_bytes()
            packed = gzip.compress(data, 9, mtime=0) if suffix == ".gz" else brotli.compress(data, quality=11)
            written += _write_if_smaller(target, packed, len(data))
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m ostracon.relay.precompress DIR", file=sys.stderr)
        return 2
    n = precompress(args[0])
    print(f"precompressed {n} files under {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
