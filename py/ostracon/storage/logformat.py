"""Byte formats of the file adapter: segment header, framed records, commit groups, snapshots.

Pure functions over bytes (no I/O), so the rules in docs/STORAGE.md live in one place and
can be tested byte by byte. See docs/STORAGE.md for the layout tables.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

# CRC-32 (zlib polynomial): in the standard library and implemented in C. CRC-32C would
# need a third-party package; the version field lets a later format switch.
crc32 = zlib.crc32

SEG_MAGIC = b"OSTLOG"
SEG_VERSION = 1
SEG_HEADER = struct.Struct(">6sHQI")  # magic, version, first position, crc of the first 16 bytes
SEG_HEADER_SIZE = SEG_HEADER.size     # 20

REC_SYNC = b"\xc5\x1e"                # lets a scan find candidate records with bytes.find
REC_HEADER = struct.Struct(">2sIBBIQ")  # sync, crc, flags, kind, length, position
REC_HEADER_SIZE = REC_HEADER.size     # 20
_REC_CHECKED = struct.Struct(">BBIQ")  # header bytes 6..20; the CRC covers them + the payload,
                                       # which are contiguous: one crc32 call per record
_CRC = struct.Struct(">I")

FLAG_START = 1   # first record of a commit group (one flush = one group)
FLAG_END = 2     # last record of a commit group; the group counts only once this is on disk
KIND_DATA = 0    # an opaque record; position = previous + 1
KIND_META = 1    # payload = u16 key length, key (UTF-8), value; position = previous position
KIND_FLOOR = 2   # payload = u64: records at or below it were compacted away; position = previous
_KINDS = (KIND_DATA, KIND_META, KIND_FLOOR)
_FLOOR = struct.Struct(">Q")
_KEYLEN = struct.Struct(">H")

SNAP_MAGIC = b"OSTSNP"
SNAP_VERSION = 1
SNAP_HEADER = struct.Struct(">6sHQQI")  # magic, version, position, data length, crc(header[:24] + data)
SNAP_HEADER_SIZE = SNAP_HEADER.size     # 28


def segment_name(first: int) -> str:
    return f"seg-{first:016d}.log"


def _ascii_digits(text: str) -> bool:
    """Only 0-9: str.isdigit() alone also takes "²" (int() refuses it) and "٣" (int() reads it),
    so a stray file could pose under a number the store never wrote."""
    return text.isascii() and text.isdigit()


def parse_segment_name(name: str) -> int | None:
    if len(name) == 24 and name.startswith("seg-") and name.endswith(".log") and _ascii_digits(name[4:20]):
        return int(name[4:20])
    return None


def snapshot_name(seq: int) -> str:
    return f"snap-{seq:016d}.snap"


def parse_snapshot_name(name: str) -> int | None:
    if len(name) == 26 and name.startswith("snap-") and name.endswith(".snap") and _ascii_digits(name[5:21]):
        return int(name[5:21])
    return None


def encode_segment_header(first: int) -> bytes:
    head = struct.pack(">6sHQ", SEG_MAGIC, SEG_VERSION, first)
    return head + _CRC.pack(crc32(head))


def segment_header_ok(buf: bytes | memoryview, first: int) -> bool:
    if len(buf) < SEG_HEADER_SIZE:
        return False
    magic, version, pos, crc = SEG_HEADER.unpack_from(buf, 0)
    return (magic == SEG_MAGIC and version == SEG_VERSION and pos == first
            and crc == crc32(bytes(buf[:16])))


def encode_meta(key: str, value: bytes) -> bytes:
    k = key.encode("utf-8")
    return _KEYLEN.pack(len(k)) + k + value


def decode_meta(payload: bytes | memoryview) -> tuple[str, bytes] | None:
    if len(payload) < 2:
        return None
    (n,) = _KEYLEN.unpack_from(payload, 0)
    if 2 + n > len(payload):
        return None
    try:
        key = bytes(payload[2:2 + n]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return key, bytes(payload[2 + n:])


def encode_floor(floor: int) -> bytes:
    return _FLOOR.pack(floor)


def encode_group(items: list[tuple[int, int, bytes]]) -> bytes:
    """One commit group: items are (kind, position, payload); flags mark its first and last."""
    parts: list[bytes] = []
    last = len(items) - 1
    pack_checked, pack_crc = _REC_CHECKED.pack, _CRC.pack
    for i, (kind, pos, payload) in enumerate(items):
        flags = (FLAG_START if i == 0 else 0) | (FLAG_END if i == last else 0)
        checked = pack_checked(flags, kind, len(payload), pos)
        parts.append(REC_SYNC + pack_crc(crc32(payload, crc32(checked))) + checked)
        parts.append(payload)
    return b"".join(parts)


def parse_record(buf: memoryview, off: int, end: int, max_len: int) -> tuple[int, int, int, int, int] | None:
    """(flags, kind, position, payload_start, next_offset) if a whole valid record starts at
    `off` (before `end`), else None. Checks sync, flags, kind, length bounds and CRC."""
    recs, _ = walk(buf, off, end, max_len, 1)
    return recs[0][1:] if recs else None


def walk(mv: memoryview, off: int, end: int, max_len: int,
         limit: int) -> tuple[list[tuple[int, int, int, int, int, int]], int]:
    """Parse up to `limit` consecutive whole, CRC-valid records from `off` (not past `end`).
    Returns ([(offset, flags, kind, position, payload_start, next_offset)], stop_offset);
    stop < end means the bytes at `stop` are not a whole valid record. One tight loop shared
    by recovery and reads: this is where open and records() spend their time."""
    out: list[tuple[int, int, int, int, int, int]] = []
    append = out.append
    unpack = REC_HEADER.unpack_from
    while off + REC_HEADER_SIZE <= end and limit > 0:
        sync, crc, flags, kind, length, pos = unpack(mv, off)
        start = off + REC_HEADER_SIZE
        nxt = start + length
        if (sync != REC_SYNC or flags > 3 or kind > 2 or length > max_len or nxt > end
                or crc32(mv[off + 6:nxt]) != crc):
            break
        append((off, flags, kind, pos, start, nxt))
        off = nxt
        limit -= 1
    return out, off


@dataclass
class ScanResult:
    """What a scan of one segment found. `end` is the valid prefix: just past the last
    complete commit group (or the header if there is none)."""

    header_ok: bool = False
    end: int = 0
    last: int = 0                    # last data position inside the valid prefix
    records: int = 0                 # data records inside the valid prefix
    meta: dict[str, bytes] = field(default_factory=dict)
    floor: int | None = None
    damage: int | None = None        # offset of the first byte that is not a valid record
    corrupt: bool = False            # a complete group follows the damage: not a torn tail


def scan_segment(buf: bytes, first: int, max_len: int) -> ScanResult:
    """Validate a whole segment. Records must be well framed, CRC-correct, in commit groups,
    with consecutive positions starting at `first`. Anything after the last complete group
    is either a torn tail (nothing valid follows) or corruption (a complete group follows:
    it was written after the damaged bytes were already durable)."""
    mv = memoryview(buf)
    size = len(buf)
    res = ScanResult(last=first - 1)
    if not segment_header_ok(mv, first):
        res.damage = 0 if size else None
        res.corrupt = size > 0 and find_complete_group(mv, 1, max_len)
        return res
    res.header_ok = True
    res.end = off = SEG_HEADER_SIZE
    last = first - 1
    in_group = False
    g_meta: dict[str, bytes] = {}
    g_floor: int | None = None
    g_records = 0
    bad_at = None
    while off < size and bad_at is None:
        recs, stop = walk(mv, off, size, max_len, 4096)
        for o, flags, kind, pos, start, nxt in recs:
            starts = bool(flags & FLAG_START)
            if starts == in_group or pos != (last + 1 if kind == KIND_DATA else last):
                bad_at = o
                break
            if starts:
                in_group, g_meta, g_floor, g_records = True, {}, None, 0
            if kind == KIND_DATA:
                last = pos
                g_records += 1
            elif kind == KIND_META:
                kv = decode_meta(mv[start:nxt])
                if kv is None:
                    bad_at = o
                    break
                g_meta[kv[0]] = kv[1]
            elif nxt - start == 8:
                g_floor = _FLOOR.unpack_from(mv, start)[0]
            else:
                bad_at = o
                break
            if flags & FLAG_END:
                in_group = False
                res.end, res.last = nxt, last
                res.records += g_records
                res.meta.update(g_meta)
                if g_floor is not None:
                    res.floor = g_floor
        else:
            if stop < size and len(recs) < 4096:
                bad_at = stop
            off = stop
    if bad_at is not None:
        res.damage = bad_at
        res.corrupt = find_complete_group(mv, bad_at + 1, max_len)
    elif in_group:  # the last group never got its END record: a torn tail
        res.damage = res.end
    return res


def find_complete_group(mv: memoryview, start: int, max_len: int) -> bool:
    """Is there a whole commit group (START ... END, consecutive positions, all CRCs good)
    anywhere at or after `start`? bytes.find on the sync marker keeps this fast."""
    size = len(mv)
    raw = mv.obj if isinstance(mv.obj, bytes) else bytes(mv)
    i = start
    while True:
        i = raw.find(REC_SYNC, i)
        if i < 0:
            return False
        if _complete_group_at(mv, i, size, max_len):
            return True
        i += 1


def _complete_group_at(mv: memoryview, off: int, size: int, max_len: int) -> bool:
    rec = parse_record(mv, off, size, max_len)
    if rec is None or not rec[0] & FLAG_START:
        return False
    last = None
    while True:
        flags, kind, pos, _start, nxt = rec
        if last is not None and pos != (last + 1 if kind == KIND_DATA else last):
            return False
        last = pos
        if flags & FLAG_END:
            return True
        rec = parse_record(mv, nxt, size, max_len)
        if rec is None or rec[0] & FLAG_START:
            return False


def encode_snapshot(data: bytes, position: int) -> bytes:
    head = struct.pack(">6sHQQ", SNAP_MAGIC, SNAP_VERSION, position, len(data))
    return head + _CRC.pack(crc32(data, crc32(head))) + data


def decode_snapshot_header(head: bytes, file_size: int) -> tuple[int, int] | None:
    """(position, data length) if the header is well formed and matches the file size."""
    if len(head) < SNAP_HEADER_SIZE:
        return None
    magic, version, position, length, _crc = SNAP_HEADER.unpack_from(head, 0)
    if magic != SNAP_MAGIC or version != SNAP_VERSION or SNAP_HEADER_SIZE + length != file_size:
        return None
    return position, length


def decode_snapshot(blob: bytes) -> tuple[bytes, int] | None:
    """(data, position) if the whole snapshot file is valid, else None."""
    hdr = decode_snapshot_header(blob, len(blob))
    if hdr is None:
        return None
    crc = SNAP_HEADER.unpack_from(blob, 0)[4]
    data = blob[SNAP_HEADER_SIZE:]
    if crc32(data, crc32(blob[:24])) != crc:
        return None
    return data, hdr[0]
