// "Verify everything": an independent check of the whole space, written in JavaScript.
//
// It does not ask the engine whether the data is fine: it takes every envelope the engine
// would send to a new device (db.blocksSince({})) and recomputes, with WebCrypto,
//   - each block's CID (sha256 of its bytes, CIDv1 / messagepack / sha2-256),
//   - each block's links: parents present, height = 1 + max parent height, gap-free
//     sequence numbers per author,
//   - each seal: Ed25519 signature by the author over the canonical seal without its
//     signature, and the sha256 over the CIDs of the sealed range (docs/ARCHITECTURE.md).
// A second implementation agreeing with the Python engine is the point of the exercise.

const CID_PREFIX = new Uint8Array([0x01, 0x81, 0x04, 0x12, 0x20]);
const SEAL_LABEL = new TextEncoder().encode("ostracon/seal/v1\0");
// Envelopes per progress report / yield to the event loop (keeps the page responsive).
const STEP = 200;

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
      const key = await crypto.subtle.importKey("raw", actorBytes, { name: "Ed25519" }, false, ["verify"]);
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, m.get("g"), concat(parts));
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
