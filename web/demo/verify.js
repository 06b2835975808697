// "Verify everything": an independent check of the whole space, written in JavaScript.
//
// It does not ask the engine whether the data is fine: it takes every envelope the engine
// would send to a new device (db.blocksSince({})) and recomputes, with WebCrypto,
//   - each block's CID (sha256 of its bytes, CIDv1 / messagepack / sha2-256),
//   - each block's links: parents present, height = 1 + max parent height, gap-free
//     sequence numbers per author,
//   - each seal: the author's signature over the canonical seal without its signature
//     (Ed25519 for a 32-byte actor; ECDSA P-256 / SHA-256 with low S for a `p256-pub`
//     actor, whose seal says `k: "es256"`; docs/CRYPTO.md), and the sha256 over the CIDs
//     of the sealed range (docs/ARCHITECTURE.md).
// A second implementation agreeing with the Python engine is the point of the exercise.

const CID_PREFIX = new Uint8Array([0x01, 0x81, 0x04, 0x12, 0x20]);
const SEAL_LABEL = new TextEncoder().encode("ostracon/seal/v1\0");
// P-256 (FIPS 186-4 D.1.2.3): field prime, curve b, group order; actor ids are the multicodec
// p256-pub prefix + the 33-byte compressed point.
const P256_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_PREFIX = [0x80, 0x24];
// Envelopes per progress report / yield to the event loop (keeps the page responsive).
const STEP = 200;

const big = (bytes) => bytes.reduce((a, x) => (a << 8n) | BigInt(x), 0n);

function modPow(b, e, m) {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}

// The uncompressed SEC1 point of a compressed one (not every WebCrypto imports compressed
// points). p ≡ 3 (mod 4), so the square root is a power; null when x is not on the curve.
function p256Uncompressed(c) {
  if (c.length !== 33 || (c[0] !== 2 && c[0] !== 3)) return null;
  const x = big(c.subarray(1));
  if (x >= P256_P) return null;
  const rhs = (((x * x % P256_P) * x - 3n * x + P256_B) % P256_P + P256_P) % P256_P;
  let y = modPow(rhs, (P256_P + 1n) / 4n, P256_P);
  if ((y * y) % P256_P !== rhs) return null;
  if (Number(y & 1n) !== (c[0] & 1)) y = P256_P - y;
  const out = new Uint8Array(65);
  out[0] = 4;
  out.set(c.subarray(1), 1);
  for (let i = 64; i >= 33; i--, y >>= 8n) out[i] = Number(y & 0xffn);
  return out;
}

// Verify a seal signature by its author: Ed25519 or ECDSA P-256 (low S only, as the engine).
async function verifySignature(actorBytes, alg, sig, message) {
  if (actorBytes.length === 32 && alg === undefined) {
    const key = await crypto.subtle.importKey("raw", actorBytes, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, sig, message);
  }
  if (actorBytes.length === 35 && actorBytes[0] === P256_PREFIX[0] && actorBytes[1] === P256_PREFIX[1]
      && alg === "es256" && sig.length === 64) {
    const s = big(sig.subarray(32));
    if (s === 0n || s > P256_N / 2n) return false;
    const point = p256Uncompressed(actorBytes.subarray(2));
    if (!point) return false;
    const key = await crypto.subtle.importKey("raw", point, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, sig, message);
  }
  return false;
}

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.p = 0;
  }

  need(n) {
    if (this.p + n > this.b.length) throw new Error("truncated msgpack");
  }

  u8() { this.need(1); return this.b[this.p++]; }
  u16() { this.need(2); const x = this.v.getUint16(this.p); this.p += 2; return x; }
  u32() { this.need(4); const x = this.v.getUint32(this.p); this.p += 4; return x; }
  bytes(n) { this.need(n); const x = this.b.subarray(this.p, this.p + n); this.p += n; return x; }

  // One value. Maps → Map (keys decoded), bin → Uint8Array, ints beyond 2^53 → BigInt.
  value() {
    const t = this.u8();
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return this.map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return this.array(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return this.str(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bytes(this.u8()).slice();
      case 0xc5: return this.bytes(this.u16()).slice();
      case 0xc6: return this.bytes(this.u32()).slice();
      case 0xc7: { const n = this.u8(); this.u8(); return this.bytes(n).slice(); }
      case 0xc8: { const n = this.u16(); this.u8(); return this.bytes(n).slice(); }
      case 0xc9: { const n = this.u32(); this.u8(); return this.bytes(n).slice(); }
      case 0xca: { this.need(4); const x = this.v.getFloat32(this.p); this.p += 4; return x; }
      case 0xcb: { this.need(8); const x = this.v.getFloat64(this.p); this.p += 8; return x; }
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: { this.need(8); const x = this.v.getBigUint64(this.p); this.p += 8; return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x; }
      case 0xd0: { this.need(1); const x = this.v.getInt8(this.p); this.p += 1; return x; }
      case 0xd1: { this.need(2); const x = this.v.getInt16(this.p); this.p += 2; return x; }
      case 0xd2: { this.need(4); const x = this.v.getInt32(this.p); this.p += 4; return x; }
      case 0xd3: { this.need(8); const x = this.v.getBigInt64(this.p); this.p += 8; return (x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)) ? Number(x) : x; }
      case 0xd4: this.u8(); return this.bytes(1).slice();
      case 0xd5: this.u8(); return this.bytes(2).slice();
      case 0xd6: this.u8(); return this.bytes(4).slice();
      case 0xd7: this.u8(); return this.bytes(8).slice();
      case 0xd8: this.u8(); return this.bytes(16).slice();
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16());
      case 0xdd: return this.array(this.u32());
      case 0xde: return this.map(this.u16());
      case 0xdf: return this.map(this.u32());
      default: throw new Error(`bad msgpack type 0x${t.toString(16)}`);
    }
  }

  str(n) { return new TextDecoder("utf-8", { fatal: true }).decode(this.bytes(n)); }
  array(n) { const a = []; for (let i = 0; i < n; i++) a.push(this.value()); return a; }
  map(n) { const m = new Map(); for (let i = 0; i < n; i++) { const k = this.value(); m.set(k, this.value()); } return m; }

  // A top-level map with the raw byte span of each entry (key + value).
  mapWithSpans() {
    const t = this.u8();
    let n;
    if ((t & 0xf0) === 0x80) n = t & 0x0f;
    else if (t === 0xde) n = this.u16();
    else throw new Error("not a map");
    const m = new Map();
    const spans = new Map();
    for (let i = 0; i < n; i++) {
      const start = this.p;
      const k = this.value();
      m.set(k, this.value());
      spans.set(k, this.b.subarray(start, this.p));
    }
    return { m, spans };
  }
}

function concat(parts) {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const sha256 = async (b) => new Uint8Array(await crypto.subtle.digest("SHA-256", b));

// Decode an envelope: [kind, payload].
function openEnvelope(env) {
  const r = new Reader(env);
  const t = r.u8();
  if (t !== 0x92) throw new Error("an envelope must be a 2-item array");
  const kind = r.value();
  const payload = r.value();
  if (!(payload instanceof Uint8Array) || r.p !== env.length) throw new Error("malformed envelope");
  return { kind, payload };
}

// verifyAll(envelopes, onProgress(done, total)) → {blocks, seals, authors, unsealed, problems}
export async function verifyAll(envelopes, onProgress) {
  const problems = [];
  const blocks = new Map(); // cid hex -> {actor, seq, height, parents}
  const byActor = new Map(); // actor hex -> Map(seq -> cid bytes)
  const seals = [];
  const total = envelopes.length;
  for (let i = 0; i < total; i++) {
    const env = envelopes[i] instanceof Uint8Array ? envelopes[i] : new Uint8Array(envelopes[i]);
    try {
      const { kind, payload } = openEnvelope(env);
      if (kind === 1) {
        const cid = concat([CID_PREFIX, await sha256(payload)]);
        const m = new Reader(payload).value();
        if (!(m instanceof Map)) throw new Error("a block must be a map");
        const actor = hex(m.get("a"));
        const seq = m.get("s");
        blocks.set(hex(cid), { cid, actor, seq, height: m.get("h"), parents: (m.get("p") || []).map(hex) });
        if (!byActor.has(actor)) byActor.set(actor, new Map());
        byActor.get(actor).set(seq, cid);
      } else if (kind === 2) {
        seals.push(payload);
      } else {
        problems.push(`envelope ${i}: unknown kind ${kind}`);
      }
    } catch (e) {
      problems.push(`envelope ${i}: ${e.message}`);
    }
    if (onProgress && (i % STEP === 0 || i === total - 1)) {
      onProgress(i + 1, total + seals.length);
      await new Promise((r) => setTimeout(r, 0));
    }
  }
  // links: parents, heights, sequences
  for (const [cid, b] of blocks) {
    let top = 0;
    for (const p of b.parents) {
      const pb = blocks.get(p);
      if (!pb) problems.push(`block ${cid.slice(10, 22)}: parent missing`);
      else top = Math.max(top, pb.height);
    }
    if (b.parents.every((p) => blocks.has(p)) && b.height !== top + 1) {
      problems.push(`block ${cid.slice(10, 22)}: height ${b.height}, expected ${top + 1}`);
    }
  }
  for (const [actor, seqs] of byActor) {
    const n = seqs.size;
    for (let s = 1; s <= n; s++) if (!seqs.has(s)) problems.push(`author ${actor.slice(0, 12)}: sequence ${s} missing`);
  }
  // seals
  const sealedUpTo = new Map();
  let done = total;
  for (const data of seals) {
    done += 1;
    try {
      const { m, spans } = new Reader(data).mapWithSpans();
      const actorBytes = m.get("a");
      const actor = hex(actorBytes);
      const first = m.get("f"), last = m.get("l");
      const parts = [SEAL_LABEL, new Uint8Array([0x80 | (spans.size - 1)])];
      for (const [k, span] of spans) if (k !== "g") parts.push(span);
      const ok = await verifySignature(actorBytes, m.get("k"), m.get("g"), concat(parts));
      const label = `seal ${actor.slice(0, 12)} ${first}..${last}`;
      if (!ok) { problems.push(`${label}: signature does not verify`); continue; }
      const seqs = byActor.get(actor) || new Map();
      const cids = [];
      for (let s = first; s <= last; s++) if (seqs.has(s)) cids.push(seqs.get(s));
      if (cids.length !== last - first + 1) { problems.push(`${label}: covers blocks that are missing`); continue; }
      if (!equal(await sha256(concat(cids)), m.get("x"))) { problems.push(`${label}: digest does not match the blocks`); continue; }
      sealedUpTo.set(actor, Math.max(sealedUpTo.get(actor) || 0, last));
    } catch (e) {
      problems.push(`seal: ${e.message}`);
    }
    if (onProgress) onProgress(done, total);
  }
  let unsealed = 0;
  for (const [actor, seqs] of byActor) unsealed += Math.max(0, seqs.size - (sealedUpTo.get(actor) || 0));
  if (onProgress) onProgress(total, total);
  return { blocks: blocks.size, seals: seals.length, authors: byActor.size, unsealed, problems };
}
