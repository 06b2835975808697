#!/usr/bin/env python3
"""Draw the app icons of Ostracon Notes: icons/icon.svg and PNGs (192, 512, maskable 512).

    python web/demo/tools/make_icons.py

Standard library only (zlib + struct write the PNGs; a tiny supersampling rasterizer draws
them), so nothing is downloaded. The SVG and the PNGs come from the same shape list below.
The output is deterministic: rerunning gives identical bytes.

The picture: a sheet of paper with text lines, and a small commit graph on it (two branches
merging), the app's idea in one glance.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "icons"
UNIT = 512.0  # shapes are in a 512x512 space
BLUE = (47, 79, 143)
PAPER = (255, 255, 255)
LINE = (201, 211, 232)
ACCENT = (232, 163, 61)
EDGE = (47, 79, 143)

# (kind, params, colour); painted in order.
SHAPES = [
    ("rrect", (136, 96, 376, 416, 28), PAPER),
    ("rrect", (172, 150, 340, 166, 8), LINE),
    ("rrect", (172, 194, 340, 210, 8), LINE),
    ("rrect", (172, 238, 300, 254, 8), LINE),
    ("seg", (200, 300, 256, 360, 10), EDGE),
    ("seg", (312, 300, 256, 360, 10), EDGE),
    ("seg", (256, 360, 256, 392, 10), EDGE),
    ("circle", (200, 300, 17), ACCENT),
    ("circle", (312, 300, 17), ACCENT),
    ("circle", (256, 360, 17), BLUE),
]
BG_RADIUS = 100  # rounded corners of the non-maskable icon
# Maskable icons are cropped to a circle of 80% diameter by some launchers: shrink the
# drawing into that safe zone.
MASKABLE_SCALE = 0.78


def in_rrect(x: float, y: float, x0: float, y0: float, x1: float, y1: float, r: float) -> bool:
    if x < x0 or x > x1 or y < y0 or y > y1:
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def in_seg(x: float, y: float, ax: float, ay: float, bx: float, by: float, w: float) -> bool:
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
    px, py = ax + t * dx, ay + t * dy
    return (x - px) ** 2 + (y - py) ** 2 <= (w / 2) ** 2


def colour_at(x: float, y: float, maskable: bool) -> tuple[int, int, int, int] | None:
    if maskable:
        x = (x - UNIT / 2) / MASKABLE_SCALE + UNIT / 2
        y = (y - UNIT / 2) / MASKABLE_SCALE + UNIT / 2
        out = (*BLUE, 255)
    else:
        if not in_rrect(x, y, 0, 0, UNIT, UNIT, BG_RADIUS):
            return None
        out = (*BLUE, 255)
    for kind, p, c in SHAPES:
        hit = (in_rrect(x, y, *p) if kind == "rrect" else
               in_seg(x, y, *p) if kind == "seg" else
               (x - p[0]) ** 2 + (y - p[1]) ** 2 <= p[2] ** 2)
        if hit:
            out = (*c, 255)
    return out


def render(size: int, maskable: bool, ss: int) -> bytes:
    rows = []
    scale = UNIT / size
    for py in range(size):
        row = bytearray([0])  # PNG filter: none
        for px in range(size):
            r = g = b = a = 0
            for sy in range(ss):
                for sx in range(ss):
                    c = colour_at((px + (sx + 0.5) / ss) * scale, (py + (sy + 0.5) / ss) * scale, maskable)
                    if c is not None:
                        r += c[0] * c[3]
                        g += c[1] * c[3]
                        b += c[2] * c[3]
                        a += c[3]
            n = ss * ss
            if a:
                row += bytes((round(r / a), round(g / a), round(b / a), round(a / n)))
            else:
                row += b"\0\0\0\0"
        rows.append(bytes(row))
    return b"".join(rows)


def png(size: int, pixels: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(pixels, 9)) + chunk(b"IEND", b"")


def hexc(c: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % c


def svg() -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {int(UNIT)} {int(UNIT)}">',
             f'<rect width="{int(UNIT)}" height="{int(UNIT)}" rx="{BG_RADIUS}" fill="{hexc(BLUE)}"/>']
    for kind, p, c in SHAPES:
        if kind == "rrect":
            x0, y0, x1, y1, r = p
            parts.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="{r}" fill="{hexc(c)}"/>')
        elif kind == "seg":
            ax, ay, bx, by, w = p
            parts.append(f'<line x1="{ax}" y1="{ay}" x2="{bx}" y2="{by}" stroke="{hexc(c)}" '
                         f'stroke-width="{w}" stroke-linecap="round"/>')
        else:
            cx, cy, r = p
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="{hexc(c)}"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "icon.svg").write_text(svg())
    for name, size, maskable, ss in (("icon-192.png", 192, False, 3), ("icon-512.png", 512, False, 2),
                                     ("maskable-512.png", 512, True, 2)):
        (OUT / name).write_bytes(png(size, render(size, maskable, ss)))
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
