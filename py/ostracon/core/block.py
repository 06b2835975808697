"""Blocks (one document change), seals (signed authorship of a batch) and envelopes.

Formats are pinned in docs/ARCHITECTURE.md. Every decoder here raises CorruptBlockError for
anything malformed and never leaks IndexError/KeyError/TypeError.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from . import cid as cidlib
from .actors import P256, SIG_LEN, algorithm_of, p256_low_s, p256_signature_ok
from .encoding import _default, _ext_hook, canonical, check_sorted, decode, encode_canonical
from .errors import CorruptBlockError, SignatureError, ValidationError
from .textcodec import parse_batch

FORMAT_VERSION = 1

#: A block holds one document write. 256 KiB bounds the memory a single hostile block can
#: cost a receiver and keeps sync frames (512 KiB) able to carry at least one block.
MAX_BLOCK_BYTES = 256 * 1024
#: Field names and document ids are keys in indexes and URLs; 256 chars is generous.
MAX_NAME_CHARS = 256
#: Concurrent heads of one document merged by a single write. Far beyond what real
#: concurrency produces; bounds the cost of a hostile block.
MAX_PARENTS = 1024
#: An increment's integer delta: signed 64 bits (the counter range, core/state.py).
COUNTER_DELTA_MIN = -(2**63)
COUNTER_DELTA_MAX = 2**63 - 1
#: Commit metadata (provenance) of one block, encoded: a few names and input CIDs, not a
#: payload. 4 KiB holds the documented keys at their limits with room to spare and keeps
#: metadata a small fraction of MAX_BLOCK_BYTES.
MAX_META_BYTES = 4096
#: Length of each text value in commit metadata (stage, provider, model, run, note).
MAX_META_TEXT = 256
#: Input CIDs named by one commit: enough for a batch step that reads many documents.
MAX_META_INPUTS = 64
#: The keys commit metadata may carry (strict: anything else is refused, so a typo is
#: caught at the write rather than silently stored). `inputs` holds binary CIDs.
META_TEXT_KEYS = ("model", "note", "provider", "run", "stage")
META_KEYS = ("inputs",) + META_TEXT_KEYS
MAX_SEQ = 2**63 - 1

COLLECTION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_DOC_ID_BAD = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

OP_SET = "s"
OP_UNSET = "u"
OP_INCR = "i"
OP_DELETE = "x"
OP_TEXT = "t"
_INF = float("inf")


def check_collection(name: Any) -> str:
    if type(name) is not str or not COLLECTION_RE.match(name):
        raise ValidationError(
            f"collection name must be 1-128 chars of [A-Za-z0-9_.-], not starting with "
            f"'_', '.' or '-': {name!r:.80}")
    return name


def check_doc_id(doc_id: Any) -> str:
    if type(doc_id) is not str or not doc_id or len(doc_id) > MAX_NAME_CHARS:
        raise ValidationError(f"document id must be a non-empty str of at most "
                              f"{MAX_NAME_CHARS} chars: {doc_id!r:.80}")
    # An explicit, fixed set instead of str.isprintable(): that depends on the Unicode
    # database (14 in CPython 3.11, 16 in Pyodide's 3.14), so an id with a newer emoji was
    # valid in the browser and a CorruptBlockError natively. Refused: C0/DEL/C1 controls,
    # line/paragraph separators, lone surrogates.
    if _DOC_ID_BAD.search(doc_id):
        raise ValidationError(f"document id must not contain control characters: {doc_id!r:.80}")
    return doc_id


def check_field(name: Any) -> str:
    if type(name) is not str or not name or len(name) > MAX_NAME_CHARS:
        raise ValidationError(f"field name must be a non-empty str of at most "
                              f"{MAX_NAME_CHARS} chars: {name!r:.80}")
    if name[0] == "_":
        raise ValidationError(f"field names beginning with '_' are reserved: {name!r}")
    return name


#: Nesting walked by `check_write_keys` (the canonical encoding refuses deeper values anyway).
_KEY_WALK_DEPTH = 64


def check_write_field(name: Any) -> str:
    """`check_field` plus the write-time rules for dots and dollars (docs/MERGE.md): a field
    name never contains '.', because a dot always means a path into nested maps (queries,
    indexes, patches, GraphQL), and never starts with '$', which filters reserve. Blocks are
    not refused for it on decode (history stays readable)."""
    check_field(name)
    if name[:1] == "$":
        raise ValidationError(f"field names cannot start with '$': filters reserve it (and refuse "
                              f"Mongo-style operators), so such a field could never be queried: {name!r:.80}")
    if "." in name:
        raise ValidationError(f"field names cannot contain '.': a dot is a path "
                              f"(write {{{name.split('.', 1)[0]!r}: {{...}}}} for a nested map): {name!r:.80}")
    return name


def check_write_keys(value: Any, where: str = "", _depth: int = 0) -> None:
    """Refuse '.' in every map key inside a value about to be written (ValidationError)."""
    t = type(value)
    if t is dict:
        if _depth > _KEY_WALK_DEPTH:
            return
        for k, v in value.items():
            if type(k) is str and "." in k:
                raise ValidationError(f"{where}: map keys cannot contain '.' (a dot is a path): {k!r:.80}")
            if type(v) is dict or type(v) is list:
                check_write_keys(v, f"{where}.{k}" if where else str(k), _depth + 1)
    elif t is list and _depth <= _KEY_WALK_DEPTH:
        for i, v in enumerate(value):
            if type(v) is dict or type(v) is list:
                check_write_keys(v, f"{where}[{i}]", _depth + 1)


def _check_op(op: Any) -> tuple:
    if type(op) is not list or not op:
        raise CorruptBlockError("operation must be a non-empty array")
    kind = op[0]
    try:
        if kind == OP_SET and len(op) == 3:
            return (OP_SET, check_field(op[1]), op[2])
        if kind == OP_UNSET and len(op) == 2:
            return (OP_UNSET, check_field(op[1]))
        if kind == OP_INCR and len(op) == 3:
            delta = op[2]
            if type(delta) not in (int, float):
                raise CorruptBlockError("increment delta must be a number")
            if type(delta) is int and not COUNTER_DELTA_MIN <= delta <= COUNTER_DELTA_MAX:
                raise CorruptBlockError("increment delta must fit in 64 bits")
            return (OP_INCR, check_field(op[1]), delta)
        if kind == OP_DELETE and len(op) == 1:
            return (OP_DELETE,)
        if kind == OP_TEXT and len(op) == 3:
            # The payload is parsed once the block's actor is known (decode_change).
            return (OP_TEXT, check_field(op[1]), op[2])
    except ValidationError as exc:
        raise CorruptBlockError(str(exc)) from None
    raise CorruptBlockError(f"unknown or malformed operation {kind!r:.20}")


@dataclass(frozen=True, slots=True)
class Change:
    """A decoded block. `ops` are tuples: ("s", f, v) ("u", f) ("i", f, d) ("x",)
    ("t", f, batch) — a text batch as core/textcodec.py describes."""

    collection: str
    doc_id: str
    parents: tuple[bytes, ...]
    height: int
    actor: bytes
    seq: int
    hlc: int
    ops: tuple[tuple, ...]
    schema: bytes | None = None
    meta: dict | None = None

    def __post_init__(self) -> None:
        # Cheap structural checks; values inside ops were validated when they were made.
        if algorithm_of(self.actor) is None:
            raise ValidationError("actor must be an actor id (core/actors.py)")
        if type(self.seq) is not int or not 1 <= self.seq <= MAX_SEQ:
            raise ValidationError("seq must be an int >= 1")
        if type(self.height) is not int or self.height < 1 or (self.height == 1) != (not self.parents):
            raise ValidationError("height must be 1 for a root and > 1 otherwise")

    def to_map(self) -> dict:
        m = {
            "a": self.actor, "c": self.collection, "d": self.doc_id, "h": self.height,
            "o": self.ops, "p": self.parents, "s": self.seq,  # tuples pack as arrays
            "t": self.hlc, "v": FORMAT_VERSION,
        }
        if self.schema is not None:
            m["m"] = self.schema
        if self.meta is not None:
            m["e"] = self.meta
        return m

    def encode(self) -> bytes:
        """Canonical block bytes (keys are already in sorted order above)."""
        m = self.to_map()
        if self.schema is None and self.meta is None:
            return encode_canonical(m)
        return encode_canonical(canonical(m))


def check_meta(meta: Any) -> dict:
    """Validate commit metadata (block key `e`) and return it in block form.

    Shape: a dict with any of `stage`, `provider`, `model`, `run`, `note` (non-empty str of
    at most MAX_META_TEXT chars) and `inputs` (a list of at most MAX_META_INPUTS distinct
    CIDs, binary or text; kept in the given order, stored binary). Encoded size at most
    MAX_META_BYTES. Raises ValidationError for anything else (unknown keys included).
    """
    if type(meta) is not dict or not meta:
        raise ValidationError("commit metadata must be a non-empty dict")
    out: dict[str, Any] = {}
    for k in sorted(meta, key=lambda x: x if type(x) is str else ""):
        if type(k) is not str or k not in META_KEYS:
            raise ValidationError(f"unknown commit metadata key {k!r:.40}; allowed: {', '.join(META_KEYS)}")
        v = meta[k]
        if k == "inputs":
            if type(v) not in (list, tuple) or len(v) > MAX_META_INPUTS:
                raise ValidationError(f"meta inputs must be a list of at most {MAX_META_INPUTS} CIDs")
            raw = []
            for c in v:
                b = cidlib.parse_cid(c)
                if b in raw:
                    raise ValidationError("meta inputs must be distinct")
                raw.append(b)
            out[k] = raw
        else:
            if type(v) is not str or not v or len(v) > MAX_META_TEXT:
                raise ValidationError(f"meta {k} must be a non-empty str of at most {MAX_META_TEXT} chars")
            out[k] = v
    if len(encode_canonical(canonical(out))) > MAX_META_BYTES:
        raise ValidationError(f"commit metadata exceeds {MAX_META_BYTES} bytes encoded")
    return out


def meta_text(meta: dict | None) -> dict | None:
    """Commit metadata as JSON-ready values (input CIDs as text)."""
    if meta is None:
        return None
    out = dict(meta)
    if "inputs" in out:
        out["inputs"] = [cidlib.format_cid(c) for c in out["inputs"]]
    return out


# Top-level key orders a block may have: `e` (commit metadata) and `m` (schema) optional.
_KEYS = ("a", "c", "d", "h", "o", "p", "s", "t", "v")
_KEY_ORDERS = frozenset((
    _KEYS,
    ("a", "c", "d", "h", "m", "o", "p", "s", "t", "v"),
    ("a", "c", "d", "e", "h", "o", "p", "s", "t", "v"),
    ("a", "c", "d", "e", "h", "m", "o", "p", "s", "t", "v"),
))
_VALUE_CONTAINERS = (dict, list)
_SCALARS = (str, int, float, bool, type(None), bytes)


def decode_change(data: bytes, *, trusted: bool = False) -> Change:
    """Parse and validate block bytes. Raises CorruptBlockError.

    Hot path of sync and cold open: the canonical-form check is split into a key-order
    check of the top level, a walk of container values only, and one C re-encode.
    """
    if not isinstance(data, bytes):
        raise CorruptBlockError(f"block must be bytes, not {type(data).__name__}")
    if len(data) > MAX_BLOCK_BYTES:
        raise CorruptBlockError(f"block of {len(data)} bytes exceeds {MAX_BLOCK_BYTES}")
    try:
        m = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook,
                            use_list=True, max_bin_len=len(data), max_str_len=len(data))
    except CorruptBlockError:
        raise
    except Exception as exc:  # msgpack raises many types (ExtraData, ValueError, ...)
        raise CorruptBlockError(f"not valid msgpack: {exc.__class__.__name__}") from None
    if type(m) is not dict:
        raise CorruptBlockError("block must be a map")
    keys = tuple(m)
    if keys != _KEYS and keys not in _KEY_ORDERS:
        raise CorruptBlockError(f"block has wrong or unsorted keys: {list(keys)[:12]}")
    if m["v"] != FORMAT_VERSION or type(m["v"]) is not int:
        raise CorruptBlockError(f"unsupported block format version {m['v']!r}")
    try:
        check_collection(m["c"])
        check_doc_id(m["d"])
    except ValidationError as exc:
        raise CorruptBlockError(str(exc)) from None
    parents = m["p"]
    if type(parents) is not list or len(parents) > MAX_PARENTS:
        raise CorruptBlockError("parents must be a list of CIDs")
    for i, p in enumerate(parents):
        if not cidlib.is_cid(p):
            raise CorruptBlockError("parent is not a CID")
        if i and parents[i - 1] >= p:
            raise CorruptBlockError("parents must be sorted and unique")
    t = m["t"]
    if type(t) is not int or not 0 <= t < 2**64:
        raise CorruptBlockError("clock stamp out of range")
    ops = m["o"]
    if type(ops) is not list:
        raise CorruptBlockError("operations must be a list")
    checked = []
    seen: set = set()
    for op in ops:
        # Fast path for the common op, a set of a plain field name; the rest via _check_op.
        if (type(op) is list and len(op) == 3 and op[0] == OP_SET and type(op[1]) is str
                and op[1] and op[1][0] != "_" and len(op[1]) <= MAX_NAME_CHARS):
            c = (OP_SET, op[1], op[2])
        else:
            c = _check_op(op)
        if c[0] == OP_SET:
            v = c[2]
            if type(v) in _VALUE_CONTAINERS:
                check_sorted(v)
            elif type(v) is float and (v != v or v in (_INF, -_INF)):
                raise CorruptBlockError("NaN/Infinity in a value")
            elif type(v) not in _SCALARS:
                # e.g. msgpack's Timestamp (ext -1 bypasses ext_hook): not a JSON-like value
                raise CorruptBlockError(f"value of type {type(v).__name__} is not JSON-like")
        elif c[0] == OP_INCR:
            d = c[2]
            if type(d) is float and (d != d or d in (_INF, -_INF)):
                raise CorruptBlockError("NaN/Infinity increment")
        elif c[0] == OP_DELETE:
            if len(ops) != 1:
                raise CorruptBlockError("a delete must be the block's only operation")
            checked.append(c)
            continue
        if c[1] in seen:
            raise CorruptBlockError("a block may touch each field once")
        seen.add(c[1])
        checked.append(c)
    # The canonical-form check re-encodes the block (a third of the decode cost). Blocks
    # replayed from our own storage passed it when they were first received: skip it.
    if not trusted:
        try:
            again = msgpack.packb(m, use_bin_type=True, default=_default)
        except Exception:
            raise CorruptBlockError("block cannot be re-encoded") from None
        if again != data:
            raise CorruptBlockError("block bytes are not in canonical form")
    schema = m.get("m")
    if schema is not None and not cidlib.is_cid(schema):
        raise CorruptBlockError("schema id must be a CID")
    meta = m.get("e")
    if meta is not None:
        try:
            if check_meta(meta) != meta:
                raise ValidationError("inputs must be binary CIDs")
        except ValidationError as exc:
            raise CorruptBlockError(f"commit metadata: {exc}") from None
    actor, seq, height = m["a"], m["s"], m["h"]
    if algorithm_of(actor) is None:
        raise CorruptBlockError("actor is not an Ed25519 key or a P-256 id with a point on the curve")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise CorruptBlockError("seq must be an int >= 1")
    if type(height) is not int or height < 1 or (height == 1) != (not parents):
        raise CorruptBlockError("height must be 1 for a root and > 1 otherwise")
    for c in checked:
        if c[0] == OP_TEXT:
            try:
                parse_batch(c[2], actor)
            except ValidationError as exc:
                raise CorruptBlockError(f"text operation on {c[1]!r:.40}: {exc}") from None
    # Everything __post_init__ checks was checked above: build without re-validating
    # (this constructor is ~40% of the decode cost otherwise).
    ch = _new(Change)
    _set(ch, "collection", m["c"])
    _set(ch, "doc_id", m["d"])
    _set(ch, "parents", tuple(parents))
    _set(ch, "height", height)
    _set(ch, "actor", actor)
    _set(ch, "seq", seq)
    _set(ch, "hlc", t)
    _set(ch, "ops", tuple(checked))
    _set(ch, "schema", schema)
    _set(ch, "meta", meta)
    return ch


_new = object.__new__
_set = object.__setattr__


# ---------------------------------------------------------------- seals

SEAL_DOMAIN = b"ostracon/seal/v1\x00"
#: Seal key `k` names the signature algorithm when it is not Ed25519 (whose seals have no
#: `k`, so every Ed25519 seal keeps the bytes it always had). "es256" is RFC 7518's name for
#: ECDSA on P-256 with SHA-256, signatures r ‖ s.
SEAL_ALG_ES256 = "es256"
_SEAL_ALG = {P256: SEAL_ALG_ES256}


def batch_digest(cids: Sequence[bytes]) -> bytes:
    return hashlib.sha256(b"".join(cids)).digest()


@dataclass(frozen=True, slots=True)
class Seal:
    """Signed statement: actor `a` made exactly the blocks with these CIDs as seqs f..l.

    The algorithm follows from the actor id (core/actors.py) and is recorded in the seal as
    `k` (absent for Ed25519). A P-256 signature must be low-S (ValidationError otherwise)."""

    actor: bytes
    first: int
    last: int
    digest: bytes
    signature: bytes

    def __post_init__(self) -> None:
        alg = algorithm_of(self.actor)
        if alg is None:
            raise ValidationError("seal actor must be an actor id (core/actors.py)")
        if not (type(self.first) is int and type(self.last) is int and 1 <= self.first <= self.last <= MAX_SEQ):
            raise ValidationError("seal range must satisfy 1 <= first <= last")
        if type(self.digest) is not bytes or len(self.digest) != 32:
            raise ValidationError("seal digest must be 32 bytes")
        if type(self.signature) is not bytes or len(self.signature) != SIG_LEN:
            raise ValidationError("seal signature must be 64 bytes")
        if alg == P256 and not p256_signature_ok(self.signature):
            raise ValidationError("ECDSA seal signature must be r ‖ s with 1 <= r < n and low s (s <= n/2)")

    @property
    def algorithm(self) -> str:
        """core.actors.ED25519 or core.actors.P256."""
        return algorithm_of(self.actor) or ""

    @property
    def content(self) -> bytes:
        """What the signature covers: the seal's identity. Two seals with equal content
        state the same history whatever their signature bytes (ECDSA is randomised)."""
        return self.signed_message()

    def signed_message(self) -> bytes:
        return seal_message(self.actor, self.first, self.last, self.digest)

    def encode(self) -> bytes:
        m: dict[str, Any] = {"a": self.actor, "f": self.first, "g": self.signature}
        alg = _SEAL_ALG.get(self.algorithm)
        if alg is not None:
            m["k"] = alg
        m.update({"l": self.last, "v": FORMAT_VERSION, "x": self.digest})
        return encode_canonical(m)

    def verify(self, verify_fn: Callable[[bytes, bytes, bytes], bool]) -> bool:
        """`verify_fn(actor, message, signature)` must pick the algorithm from the actor id
        (crypto.base.CryptoBackend.verify_actor)."""
        return bool(verify_fn(self.actor, self.signed_message(), self.signature))


def seal_message(actor: bytes, first: int, last: int, digest: bytes) -> bytes:
    m: dict[str, Any] = {"a": actor, "f": first}
    alg = _SEAL_ALG.get(algorithm_of(actor) or "")
    if alg is not None:
        m["k"] = alg  # signed too: a signature cannot be replayed under another algorithm
    m.update({"l": last, "v": FORMAT_VERSION, "x": digest})
    return SEAL_DOMAIN + encode_canonical(m)


def make_seal(actor: bytes, first: int, cids: list[bytes], sign: Callable[[bytes], bytes]) -> Seal:
    last = first + len(cids) - 1
    digest = batch_digest(cids)
    sig = sign(seal_message(actor, first, last, digest))
    if type(sig) is not bytes or len(sig) != SIG_LEN:
        raise SignatureError("signer returned something that is not a 64-byte signature")
    if algorithm_of(actor) == P256:
        sig = p256_low_s(sig)  # the only form receivers accept (core/actors.py)
    try:
        return Seal(actor, first, last, digest, sig)
    except ValidationError as exc:
        raise SignatureError(f"signer returned an unusable signature: {exc}") from None


_SEAL_KEYS = frozenset("afglvx")
_SEAL_KEYS_ALG = frozenset("afgklvx")


def decode_seal(data: bytes) -> Seal:
    """Parse seal bytes. CorruptBlockError for anything malformed, including a `k` that does
    not match the actor's algorithm (or is missing for a non-Ed25519 actor), a P-256 point
    off the curve and a high-S or out-of-range ECDSA signature."""
    m = decode(data)
    # type(v) is checked too: `True == 1 == 1.0`, and a seal whose bytes can vary under
    # the same signature (v as true / 1.0) would defeat seal de-duplication by bytes.
    if (type(m) is not dict or set(m) not in (_SEAL_KEYS, _SEAL_KEYS_ALG) or type(m["v"]) is not int
            or m["v"] != FORMAT_VERSION):
        raise CorruptBlockError("malformed seal")
    alg = algorithm_of(m["a"])
    if alg is None:
        raise CorruptBlockError("malformed seal: actor is not an Ed25519 key or a P-256 id on the curve")
    if m.get("k") != _SEAL_ALG.get(alg):
        raise CorruptBlockError(f"malformed seal: algorithm {m.get('k', 'ed25519')!r:.20} does not match "
                                f"the actor's ({alg})")
    try:
        return Seal(m["a"], m["f"], m["l"], m["x"], m["g"])
    except (ValidationError, TypeError) as exc:
        raise CorruptBlockError(f"malformed seal: {exc}") from None


# ---------------------------------------------------------------- envelopes

KIND_BLOCK = 1
KIND_SEAL = 2


def envelope(kind: int, payload: bytes) -> bytes:
    """msgpack `[kind, payload]`, built by hand: this is on every write's hot path."""
    n = len(payload)
    if n < 0x100:
        head = bytes((0x92, kind, 0xC4, n))
    elif n < 0x10000:
        head = bytes((0x92, kind, 0xC5, n >> 8, n & 0xFF))
    else:
        head = bytes((0x92, kind, 0xC6)) + n.to_bytes(4, "big")
    return head + payload


def open_envelope(data: bytes) -> tuple[int, bytes]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CorruptBlockError(f"envelope must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_BLOCK_BYTES + 16:
        raise CorruptBlockError("envelope too large")
    try:
        v = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception as exc:
        raise CorruptBlockError(f"malformed envelope: {exc.__class__.__name__}") from None
    if (type(v) is not list or len(v) != 2 or v[0] not in (KIND_BLOCK, KIND_SEAL)
            or type(v[0]) is not int or type(v[1]) is not bytes):
        raise CorruptBlockError("malformed envelope")
    if envelope(v[0], v[1]) != data:
        raise CorruptBlockError("envelope not in canonical form")
    return v[0], v[1]
