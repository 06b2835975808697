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
// ostracon.runtime.browser.bridge defers the sync client's task steps while an "rpc" stack or
// another task is suspended (a suspended task's own steps still run: they resume it).
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

// Snapshots are stored zlib-compressed (core/snapshot.py); one that starts with a zlib header
// is also inflated here, by the browser's native zlib, while the database is read: in the
// engine, zlib runs as WebAssembly (tens of ms for 10,000 documents). Larger output than this
// is left to the engine, which refuses it (core/snapshot.py MAX_SNAPSHOT_BYTES).
const MAX_INFLATED_SNAPSHOT = 2 ** 31 - 1;

// The inflated bytes of a zlib stream, or null when it is not one, is damaged, is followed by
// other bytes, or inflates past `max` (the engine inflates it again and names the problem).
async function inflate(data, max = MAX_INFLATED_SNAPSHOT) {
  if (typeof DecompressionStream !== "function" || !data.length || data[0] !== 0x78) return null;
  try {
    const reader = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate")).getReader();
    const parts = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > max) {
        reader.cancel().catch(() => {});
        return null;
      }
      parts.push(value);
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  } catch {
    return null;
  }
}

// `acquireWriterLock`, `idbOpen` and `idbLoad` chained in one promise (and the newest snapshot
// inflated: `snapshot.plain`). Resolves {locked: true} when another tab or worker holds the
// writer lock (`lock` false: none is taken), else {locked: false, db, loaded, release} (release
// undefined without a lock: None in Python, where null would not be). On a failure nothing stays held: the database is closed and the lock
// released before the rejection.
export async function idbOpenLoad(name, lock) {
  const release = lock ? await acquireWriterLock(name) : null;
  if (release === false) return { locked: true };
  let db = null;
  try {
    db = await idbOpen(name);
    const loaded = await idbLoad(db);
    // Set only when inflated: `undefined` reaches Python as None (null would not).
    const plain = loaded.snapshot ? await inflate(loaded.snapshot.data) : null;
    if (plain) loaded.snapshot.plain = plain;
    return { locked: false, db, loaded, release: release || undefined };
  } catch (e) {
    if (db) db.close();
    if (release) release();
    throw e;
  }
}

// Reading ahead: the worker starts `idbOpenLoad(name, true)` as soon as a page asks it to open
// a database, so IndexedDB reads while the interpreter starts; the storage adapter takes the
// result instead of starting its own (`takePrefetched`). At most one is kept.
let prefetched = null;

// Prefix of the IndexedDB names of Ostracon's databases (runtime/browser/indexeddb.py
// DB_NAME_PREFIX): `idbPrefetch` takes the name a page opens.
const DB_NAME_PREFIX = "ostracon:";

export function idbPrefetch(dbName) {
  dropPrefetched();
  const name = DB_NAME_PREFIX + dbName;
  const promise = idbOpenLoad(name, true);
  promise.catch(() => {});
  prefetched = { name, promise };
}

// The prefetched read of `name` (a promise, as `idbOpenLoad` gives), or undefined (None in
// Python); taken once.
export function takePrefetched(name) {
  if (!prefetched || prefetched.name !== name) return undefined;
  const { promise } = prefetched;
  prefetched = null;
  return promise;
}

// Give up a prefetched read nobody took (the open failed before its storage): the database
// is closed and the lock released once the read has settled.
export function dropPrefetched() {
  if (!prefetched) return;
  const { promise } = prefetched;
  prefetched = null;
  promise.then((got) => {
    if (got && !got.locked) {
      got.db.close();
      if (got.release) got.release();
    }
  }, () => {});
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
// In web/webcrypto.js; Python reaches it through this module like everything else.
export * from "./webcrypto.js";

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
