// The JS side of Ostracon's browser adapters: IndexedDB, WebCrypto, WebSocket.
//
// This ES module runs inside the Web Worker (or under Node with fake-indexeddb + ws) and is
// handed to Pyodide by web/loader.js (Python registers it under the module name it owns,
// `ostracon.runtime.browser.bridge.BRIDGE_MODULE`). The Python adapters
// (ostracon.runtime.browser: indexeddb, webcrypto, transport) are its only
// callers. It knows nothing of blocks or CRDTs: it moves opaque bytes.
//
// Conventions:
//  - bytes cross as Uint8Array (Python passes `to_js(b)`, reads back with `.to_bytes()`);
//  - every async function returns a Promise; Python waits on it with `run_sync` (JSPI) or
//    `await`;
//  - failures reject with an Error whose `.name` says what happened (QuotaExceededError,
//    StorageUnavailableError, CryptoError, ...). The Python side maps the names to the
//    ostracon error hierarchy.

import { putRuns, runAfter, u8, unpackRows } from "./records.js";

// ---- the suspension gate -----------------------------------------------------------------
// Under JSPI a Python call that blocks on a promise (run_sync) suspends its whole stack and
// returns control to the JS event loop. Nothing else may enter the engine meanwhile: it is
// single-threaded code in the middle of an operation. The Python adapters bracket every
// blocking wait with gateEnter(kind)/gateExit(kind), kind "rpc" (a worker RPC batch) or "task"
// (an asyncio task: the sync client). The worker waits for gateIdle() before entering Python;
// ostracon.runtime.browser.bridge defers asyncio callbacks while an "rpc" stack is suspended. (A suspended
// task is resumed BY an asyncio callback, so task suspensions cannot defer the loop.)
let gateDepth = 0;
let gateRpcDepth = 0;
let gateWaiters = [];
export function gateEnter(kind) {
  gateDepth++;
  if (kind === "rpc") gateRpcDepth++;
}
export function gateExit(kind) {
  gateDepth--;
  if (kind === "rpc") gateRpcDepth--;
  if (gateDepth === 0 && gateWaiters.length) {
    const ws = gateWaiters;
    gateWaiters = [];
    // After the current (Python) task unwinds, never inside it.
    setTimeout(() => { for (const w of ws) w(); }, 0);
  }
}
export function gateBusy() { return gateDepth > 0; }
export function gateRpcBusy() { return gateRpcDepth > 0; }
export function gateIdle() {
  return gateDepth === 0 ? Promise.resolve() : new Promise((resolve) => gateWaiters.push(resolve));
}

// Version 2 added the read view (`view`). An older database is upgraded in place.
const DB_VERSION = 2;
// The object stores of one Ostracon database. Keys: records and snapshots by
// position (a positive integer, in order), meta by string, the read view by
// [collection, id] (documents as plain values, for pages that read them without the
// engine: web/readview.js; ostracon/runtime/browser/readview.py).
export const STORES = Object.freeze(["records", "snapshots", "meta", "view"]);

function typedError(name, message, cause) {
  const e = new Error(message);
  e.name = name;
  if (cause !== undefined) e.cause = cause;
  return e;
}

// Translate a DOMException from IndexedDB into a typed error. The quota case matters most:
// a full origin must never look like a successful write.
function idbError(err, what) {
  const name = err && err.name ? err.name : "UnknownError";
  const msg = `${what}: ${name}${err && err.message ? `: ${err.message}` : ""}`;
  if (name === "QuotaExceededError") return typedError("QuotaExceededError", msg, err);
  if (name === "InvalidStateError" || name === "TransactionInactiveError")
    return typedError("StorageClosedError", msg, err);
  if (name === "VersionError" || name === "SecurityError" || name === "NotFoundError")
    return typedError("StorageUnavailableError", msg, err);
  return typedError("StorageError", msg, err);
}

function idbFactory() {
  const f = globalThis.indexedDB;
  if (!f) throw typedError("StorageUnavailableError", "IndexedDB is not available in this context");
  return f;
}

function request(req, what) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = (ev) => {
      if (ev && ev.preventDefault) ev.preventDefault();
      reject(idbError(req.error, what));
    };
  });
}

// Open (creating on first use) the IndexedDB database `name`. Resolves to an IDBDatabase.
export function idbOpen(name) {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = idbFactory().open(name, DB_VERSION);
    } catch (e) {
      reject(e && e.name === "StorageUnavailableError" ? e : idbError(e, `open ${name}`));
      return;
    }
    req.onupgradeneeded = () => {
      const db = req.result;
      for (const s of STORES) if (!db.objectStoreNames.contains(s)) db.createObjectStore(s);
    };
    req.onsuccess = () => {
      const db = req.result;
      // Another tab upgrading the schema: close so it is not blocked forever.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = (ev) => {
      if (ev && ev.preventDefault) ev.preventDefault();
      reject(idbError(req.error, `open ${name}`));
    };
    req.onblocked = () => reject(typedError("StorageUnavailableError",
      `open ${name}: blocked by another connection with an older schema`));
  });
}

export function idbClose(db) {
  db.close();
}

export function idbDelete(name) {
  return new Promise((resolve, reject) => {
    const req = idbFactory().deleteDatabase(name);
    req.onsuccess = () => resolve(true);
    req.onerror = () => reject(idbError(req.error, `delete ${name}`));
    req.onblocked = () => reject(typedError("StorageUnavailableError", `delete ${name}: still open elsewhere`));
  });
}

// Read the whole database in one read-only transaction:
//   {positions: number[], packed: Uint8Array, ends: number[] (record i is
//    packed[ends[i-1] .. ends[i])), snapshot: {position, data} | undefined,
//    metaKeys: string[], metaValues: Uint8Array[], viewCount: number (rows in the read view)}
// Only the newest snapshot is returned (older ones are kept until compaction only as a
// fallback if the newest is corrupt: `idbLoadSnapshots` lists them all).
export function idbLoad(db) {
  return new Promise((resolve, reject) => {
    let tx;
    try {
      tx = db.transaction(STORES, "readonly");
    } catch (e) {
      reject(idbError(e, "load"));
      return;
    }
    // `snapshot` stays undefined when there is none (undefined reaches Python as None).
    const out = { positions: [], packed: new Uint8Array(0), ends: [], snapshot: undefined, metaKeys: [], metaValues: [] };
    let keys = null;
    let values = null;
    let failed = null;
    const rs = tx.objectStore("records");
    rs.getAllKeys().onsuccess = (ev) => { keys = ev.target.result; };
    rs.getAll().onsuccess = (ev) => { values = ev.target.result; };
    const ss = tx.objectStore("snapshots");
    ss.openCursor(null, "prev").onsuccess = (ev) => {
      const c = ev.target.result;
      if (c) out.snapshot = { position: c.key, data: u8(c.value) };
    };
    const ms = tx.objectStore("meta");
    ms.getAllKeys().onsuccess = (ev) => { out.metaKeys = ev.target.result; };
    ms.getAll().onsuccess = (ev) => { out.metaValues = ev.target.result.map(u8); };
    // Rows of the read view: the engine rebuilds a view with fewer rows than documents.
    tx.objectStore("view").count().onsuccess = (ev) => { out.viewCount = ev.target.result; };
    tx.oncomplete = () => {
      if (failed) { reject(failed); return; }
      try {
        Object.assign(out, unpackRows(keys || [], values || []));
      } catch (e) {
        reject(e && e.name === "StorageError" ? e : idbError(e, "load"));
        return;
      }
      resolve(out);
    };
    tx.onabort = () => reject(failed || idbError(tx.error, "load"));
    tx.onerror = (ev) => { if (ev && ev.preventDefault) ev.preventDefault(); };
  });
}

// Every snapshot as [{position, data}], oldest first.
export function idbLoadSnapshots(db) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(["snapshots"], "readonly");
    const out = [];
    tx.objectStore("snapshots").openCursor().onsuccess = (ev) => {
      const c = ev.target.result;
      if (c) { out.push({ position: c.key, data: u8(c.value) }); c.continue(); }
    };
    tx.oncomplete = () => resolve(out);
    tx.onabort = () => reject(idbError(tx.error, "load snapshots"));
  });
}

// Apply one batch of changes in ONE read-write transaction. Resolves only on `oncomplete`
// (the browser's durability acknowledgement), rejects on abort with a typed error; an
// aborted transaction writes nothing.
//   batch = {
//     positions: number[],                                // puts into records: either
//     packed: Uint8Array, ends: number[],                 //   one buffer and end offsets
//     runRecords: number,                                 //   (> 0: rows of that many records, records.js)
//     records: Uint8Array[],                              //   or one array per record
//     metaKeys: string[], metaValues: Uint8Array[],      // puts into meta
//     metaDeleteKeys: string[] | null,                   // deletes from meta
//     snapshot: {position, data} | null,                 // put into snapshots
//     dropRecordsUpTo: number | null,                    // delete records with key <= n
//     dropSnapshotsBelow: number | null,                 // delete snapshots with key < n
//     view: {clear, putKeys, putDocs, deleteKeys} | null, // read view rows (same transaction)
//   }
export function idbWrite(db, batch) {
  return new Promise((resolve, reject) => {
    let tx;
    try {
      // "strict" asks the browser to flush to disk before oncomplete (Chromium defaults to
      // "relaxed" which may acknowledge before the OS flush). Unknown option → ignored.
      tx = db.transaction(STORES, "readwrite", { durability: "strict" });
    } catch (e) {
      reject(idbError(e, "write"));
      return;
    }
    let failed = null;
    tx.oncomplete = () => resolve(true);
    tx.onabort = () => reject(failed || idbError(tx.error, "write"));
    tx.onerror = (ev) => {
      // Keep the first request error: it is more specific than the abort reason.
      const err = ev && ev.target && ev.target.error;
      if (!failed && err) failed = idbError(err, "write");
    };
    try {
      const rs = tx.objectStore("records");
      const upTo = batch.dropRecordsUpTo;
      if (upTo != null && upTo > 0) {
        rs.delete(IDBKeyRange.upperBound(upTo));
        // A run that straddles `upTo` (key > upTo, first <= upTo) keeps only its newer
        // records. The transaction then commits on its own once this last request is done.
        rs.openCursor(IDBKeyRange.lowerBound(upTo, true)).onsuccess = (ev) => {
          const c = ev.target.result;
          const tail = c ? runAfter(c.value, upTo) : null;
          if (tail) c.update(tail);
        };
      }
      const positions = batch.positions || [];
      if (batch.packed && batch.runRecords > 0) {
        putRuns(rs, batch.positions || [], u8(batch.packed), batch.ends || [], batch.runRecords);
      } else if (batch.packed) {
        // One buffer for the batch: record i is packed[ends[i-1] .. ends[i]). slice() copies,
        // so each stored value owns its bytes (a subarray would clone the whole buffer).
        const packed = u8(batch.packed);
        const ends = batch.ends || [];
        let start = 0;
        for (let i = 0; i < positions.length; i++) {
          rs.put(packed.slice(start, ends[i]), positions[i]);
          start = ends[i];
        }
      } else {
        const records = batch.records || [];
        for (let i = 0; i < positions.length; i++) rs.put(records[i], positions[i]);
      }
      const ms = tx.objectStore("meta");
      const keys = batch.metaKeys || [];
      const values = batch.metaValues || [];
      for (let i = 0; i < keys.length; i++) ms.put(values[i], keys[i]);
      for (const k of batch.metaDeleteKeys || []) ms.delete(k);
      const ss = tx.objectStore("snapshots");
      if (batch.snapshot) ss.put(batch.snapshot.data, batch.snapshot.position);
      if (batch.dropSnapshotsBelow != null && batch.dropSnapshotsBelow > 0)
        ss.delete(IDBKeyRange.upperBound(batch.dropSnapshotsBelow, true));
      if (batch.view) writeView(tx.objectStore("view"), batch.view);
      if (tx.commit && !(upTo != null && upTo > 0)) tx.commit();
    } catch (e) {
      failed = e && e.name === "StorageError" ? e : idbError(e, "write");
      try { tx.abort(); } catch (_) { /* already finished */ }
    }
  });
}

// Read view rows: a rebuild clears the store first; deletes before puts (a key is in one).
function writeView(vs, view) {
  if (view.clear) vs.clear();
  for (const k of view.deleteKeys || []) vs.delete(k);
  const keys = view.putKeys || [];
  const docs = view.putDocs || [];
  for (let i = 0; i < keys.length; i++) vs.put(docs[i], keys[i]);
}

// How much of the origin's quota is used, when the browser tells (else null).
export async function storageEstimate() {
  const s = globalThis.navigator && globalThis.navigator.storage;
  if (!s || !s.estimate) return null;
  const e = await s.estimate();
  return { usage: e.usage ?? null, quota: e.quota ?? null };
}

// Ask the browser not to evict this origin's storage under pressure (best effort).
export async function storagePersist() {
  const s = globalThis.navigator && globalThis.navigator.storage;
  if (!s || !s.persist) return false;
  try { return await s.persist(); } catch (_) { return false; }
}

// ---- single writer --------------------------------------------------------------------
// Two tabs writing the same database would each assign the same record positions. The Web
// Locks API gives an exclusive, origin-wide lock that the browser releases when the holder
// goes away (tab closed, worker terminated). Resolves to a release function (which returns a
// promise settled once the lock is really free), or `false` if another context holds the
// lock. Where the API is missing (Node) it resolves to a no-op release.
export function acquireWriterLock(name) {
  const locks = globalThis.navigator && globalThis.navigator.locks;
  if (!locks || !locks.request) return Promise.resolve(() => Promise.resolve(true));
  return new Promise((resolve, reject) => {
    let done = null;
    done = locks.request(`ostracon-writer:${name}`, { ifAvailable: true }, (lock) => {
      if (!lock) { resolve(false); return undefined; }
      return new Promise((release) => resolve(() => { release(); return done; }));
    });
    done.catch(reject);
  });
}

// ---- WebCrypto ------------------------------------------------------------------------

const subtle = () => {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) throw typedError("CryptoError", "WebCrypto (crypto.subtle) is not available");
  return s;
};

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410): WebCrypto does not import raw
// private keys, so the seed is prefixed with this fixed DER header.
const ED25519_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

function cryptoError(e, what) {
  if (e && e.name === "CryptoError") return e;
  return typedError("CryptoError", `${what}: ${e && e.name ? e.name : "Error"}${e && e.message ? `: ${e.message}` : ""}`, e);
}

function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

// Imported keys are cached (importKey costs more than a signature). Bounded: an actor signs
// with one or two seeds, a space has one key; 64 covers many spaces without growing forever.
const KEY_CACHE_LIMIT = 64;
const keyCache = new Map();
async function cachedKey(kind, raw, make) {
  const k = `${kind}:${hex(raw)}`;
  let p = keyCache.get(k);
  if (p) {
    keyCache.delete(k);
    keyCache.set(k, p);
    return p;
  }
  p = make();
  keyCache.set(k, p);
  if (keyCache.size > KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value);
  try {
    return await p;
  } catch (e) {
    keyCache.delete(k);
    throw e;
  }
}

function seedPkcs8(seed) {
  seed = u8(seed);
  if (seed.length !== 32) throw typedError("CryptoError", `Ed25519 seed must be 32 bytes, got ${seed.length}`);
  const der = new Uint8Array(48);
  der.set(ED25519_PKCS8_PREFIX, 0);
  der.set(seed, 16);
  return der;
}

function b64urlDecode(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export async function ed25519PublicKey(seed) {
  try {
    const key = await subtle().importKey("pkcs8", seedPkcs8(seed), { name: "Ed25519" }, true, ["sign"]);
    const jwk = await subtle().exportKey("jwk", key);
    return b64urlDecode(jwk.x);
  } catch (e) {
    throw cryptoError(e, "ed25519 public key");
  }
}

export async function ed25519Sign(seed, message) {
  try {
    const key = await cachedKey("ed-sign", u8(seed), () =>
      subtle().importKey("pkcs8", seedPkcs8(seed), { name: "Ed25519" }, false, ["sign"]));
    return new Uint8Array(await subtle().sign({ name: "Ed25519" }, key, u8(message)));
  } catch (e) {
    throw cryptoError(e, "ed25519 sign");
  }
}

// Never rejects: a malformed key or signature is simply "not valid".
export async function ed25519Verify(publicKey, message, signature) {
  try {
    publicKey = u8(publicKey);
    signature = u8(signature);
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    const key = await cachedKey("ed-verify", publicKey, () =>
      subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]));
    return await subtle().verify({ name: "Ed25519" }, key, signature, u8(message));
  } catch (_) {
    return false;
  }
}

// PKCS#8 of a P-256 private scalar d: an RFC 5915 ECPrivateKey without its optional public
// key (WebCrypto imports no raw private keys; Chromium's BoringSSL and Node's OpenSSL compute
// the public point on import, so the scalar multiplication stays in native, constant-time code).
const P256_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
  0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25, 0x02, 0x01,
  0x01, 0x04, 0x20,
]);
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" };
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" };

function p256Pkcs8(d) {
  d = u8(d);
  if (d.length !== 32) throw typedError("CryptoError", `P-256 private key must be 32 bytes, got ${d.length}`);
  const der = new Uint8Array(P256_PKCS8_PREFIX.length + 32);
  der.set(P256_PKCS8_PREFIX, 0);
  der.set(d, P256_PKCS8_PREFIX.length);
  return der;
}

// The uncompressed public point 04 ‖ x ‖ y (65 bytes); Python compresses and checks it.
export async function p256PublicKey(d) {
  try {
    const key = await subtle().importKey("pkcs8", p256Pkcs8(d), ECDSA_P256, true, ["sign"]);
    const jwk = await subtle().exportKey("jwk", key);
    const out = new Uint8Array(65);
    out[0] = 4;
    out.set(b64urlDecode(jwk.x), 1);
    out.set(b64urlDecode(jwk.y), 33);
    return out;
  } catch (e) {
    throw cryptoError(e, "p256 public key");
  }
}

// r ‖ s (IEEE P1363, 64 bytes) over SHA-256(message); randomised. Python normalises to low-S.
export async function p256Sign(d, message) {
  try {
    const key = await cachedKey("p256-sign", u8(d), () =>
      subtle().importKey("pkcs8", p256Pkcs8(d), ECDSA_P256, false, ["sign"]));
    return new Uint8Array(await subtle().sign(ECDSA_SHA256, key, u8(message)));
  } catch (e) {
    throw cryptoError(e, "p256 sign");
  }
}

// `publicKey`: the uncompressed point (65 bytes). Never rejects: malformed input is "not valid".
export async function p256Verify(publicKey, message, signature) {
  try {
    publicKey = u8(publicKey);
    signature = u8(signature);
    if (publicKey.length !== 65 || signature.length !== 64) return false;
    const key = await cachedKey("p256-verify", publicKey, () =>
      subtle().importKey("raw", publicKey, ECDSA_P256, false, ["verify"]));
    return await subtle().verify(ECDSA_SHA256, key, signature, u8(message));
  } catch (_) {
    return false;
  }
}

function aesKey(key, usage) {
  key = u8(key);
  if (key.length !== 32) throw typedError("CryptoError", `AES-256-GCM key must be 32 bytes, got ${key.length}`);
  return cachedKey(`aes-${usage}`, key, () =>
    subtle().importKey("raw", key, { name: "AES-GCM" }, false, [usage]));
}

function checkNonce(nonce) {
  nonce = u8(nonce);
  if (nonce.length !== 12) throw typedError("CryptoError", `AES-GCM nonce must be 12 bytes, got ${nonce.length}`);
  return nonce;
}

export async function aesGcmEncrypt(key, nonce, plaintext, aad) {
  try {
    const k = await aesKey(key, "encrypt");
    const ct = await subtle().encrypt({ name: "AES-GCM", iv: checkNonce(nonce), additionalData: u8(aad), tagLength: 128 },
      k, u8(plaintext));
    return new Uint8Array(ct);
  } catch (e) {
    throw cryptoError(e, "aes-gcm encrypt");
  }
}

export async function aesGcmDecrypt(key, nonce, ciphertext, aad) {
  try {
    const k = await aesKey(key, "decrypt");
    const pt = await subtle().decrypt({ name: "AES-GCM", iv: checkNonce(nonce), additionalData: u8(aad), tagLength: 128 },
      k, u8(ciphertext));
    return new Uint8Array(pt);
  } catch (e) {
    // OperationError = the tag did not verify (wrong key, tampered bytes, wrong AAD).
    throw cryptoError(e, "aes-gcm decrypt");
  }
}

export async function hkdfSha256(ikm, salt, info, length) {
  try {
    const k = await subtle().importKey("raw", u8(ikm), "HKDF", false, ["deriveBits"]);
    const bits = await subtle().deriveBits({ name: "HKDF", hash: "SHA-256", salt: u8(salt), info: u8(info) }, k, length * 8);
    return new Uint8Array(bits);
  } catch (e) {
    throw cryptoError(e, "hkdf");
  }
}

export async function pbkdf2Sha256(password, salt, iterations, length) {
  try {
    const k = await subtle().importKey("raw", u8(password), "PBKDF2", false, ["deriveBits"]);
    const bits = await subtle().deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: u8(salt), iterations }, k, length * 8);
    return new Uint8Array(bits);
  } catch (e) {
    throw cryptoError(e, "pbkdf2");
  }
}

// X25519 (RFC 7748) wraps space keys to members. WebCrypto imports a raw private key only as
// PKCS#8: the fixed DER prefix for an X25519 key (OID 1.3.101.110) followed by the 32 bytes.
const X25519_PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e,
  0x04, 0x22, 0x04, 0x20]);

function x25519Pkcs8(priv) {
  priv = u8(priv);
  if (priv.length !== 32) throw typedError("CryptoError", `X25519 private key must be 32 bytes, got ${priv.length}`);
  const der = new Uint8Array(48);
  der.set(X25519_PKCS8_PREFIX, 0);
  der.set(priv, 16);
  return der;
}

export async function x25519PublicKey(priv) {
  try {
    const key = await subtle().importKey("pkcs8", x25519Pkcs8(priv), { name: "X25519" }, true, ["deriveBits"]);
    const jwk = await subtle().exportKey("jwk", key);
    return b64urlDecode(jwk.x);
  } catch (e) {
    throw cryptoError(e, "x25519 public key");
  }
}

export async function x25519(priv, peerPublic) {
  try {
    const key = await subtle().importKey("pkcs8", x25519Pkcs8(priv), { name: "X25519" }, false, ["deriveBits"]);
    const peer = await subtle().importKey("raw", u8(peerPublic), { name: "X25519" }, false, []);
    return new Uint8Array(await subtle().deriveBits({ name: "X25519", public: peer }, key, 256));
  } catch (e) {
    // Also a low-order peer key: WebCrypto refuses an all-zero shared secret (RFC 7748 §6.1).
    throw cryptoError(e, "x25519");
  }
}

export async function sha256(data) {
  return new Uint8Array(await subtle().digest("SHA-256", u8(data)));
}

// getRandomValues fills at most 65,536 bytes per call (a WebCrypto limit).
const RANDOM_CHUNK = 65536;
export function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += RANDOM_CHUNK) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + RANDOM_CHUNK)));
  return out;
}

// ---- WebSocket ------------------------------------------------------------------------

// Open a binary WebSocket. Callbacks:
//   onMessage(Uint8Array)
//   onStatus(state, code, reason) with state "connecting" | "open" | "error" | "closed"
//     (code and reason: the close frame's, on "closed"; 1006 = no close frame)
// Returns a handle {send(bytes) → boolean, close(code?, reason?), detach(), state(),
// bufferedAmount()}. `detach()` drops the callbacks (the caller is about to free them).
// Text frames are ignored: the relay protocol is binary only.
export function wsConnect(url, onMessage, onStatus) {
  const WS = globalThis.WebSocket;
  if (!WS) throw typedError("TransportError", "WebSocket is not available in this context");
  let ws;
  try {
    ws = new WS(url);
  } catch (e) {
    throw typedError("TransportError", `cannot connect to ${url}: ${e && e.message ? e.message : e}`, e);
  }
  ws.binaryType = "arraybuffer";
  let state = "connecting";
  let cbMessage = onMessage;
  let cbStatus = onStatus;
  const status = (s, code, reason) => {
    state = s;
    if (cbStatus) {
      try { cbStatus(s, code ?? null, reason ?? null); } catch (e) { console.error("ostracon ws status callback failed", e); }
    }
  };
  ws.onopen = () => status("open");
  ws.onerror = () => status("error");
  ws.onclose = (ev) => status("closed", ev.code, ev.reason || "");
  ws.onmessage = (ev) => {
    if (!(ev.data instanceof ArrayBuffer) || !cbMessage) return;
    try { cbMessage(new Uint8Array(ev.data)); } catch (e) { console.error("ostracon ws message callback failed", e); }
  };
  return {
    send(bytes) {
      if (ws.readyState !== 1) return false;
      ws.send(u8(bytes));
      return true;
    },
    close(code, reason) {
      try { ws.close(code ?? 1000, reason ?? ""); } catch (_) { /* already closing */ }
    },
    detach() {
      cbMessage = null;
      cbStatus = null;
    },
    state() { return state; },
    bufferedAmount() { return ws.bufferedAmount; },
  };
}

// A BroadcastChannel for sync between tabs/workers of this origin without a relay
// (py/ostracon/sync/broadcast.py owns the protocol; this only moves bytes). Messages are
// Uint8Array both ways; anything else on the channel is ignored here.
export function bcOpen(name, onMessage) {
  const BC = globalThis.BroadcastChannel;
  if (!BC) throw typedError("TransportError", "BroadcastChannel is not available in this context");
  const ch = new BC(name);
  let cb = onMessage;
  ch.onmessage = (ev) => {
    if (!cb || !(ev.data instanceof Uint8Array)) return;
    try { cb(ev.data); } catch (e) { console.error("ostracon broadcast callback failed", e); }
  };
  return {
    post(bytes) { ch.postMessage(u8(bytes)); },
    close() { cb = null; ch.close(); },
  };
}
