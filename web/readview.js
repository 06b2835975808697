// Reading the materialized read view without the engine: first paint.
//
//   import Ostracon from "./ostracon.js";
//   const { docs, reason } = await Ostracon.peek("notes", "todos");
//   if (docs) paint(docs);                 // stored documents, before Python has started
//   const db = await Ostracon.open({ name: "notes" });   // then live data
//
// The engine keeps, in the same IndexedDB transaction as the blocks they reflect, each
// collection's current documents in the object store `view` (key [collection, id], value: the
// document as `collection.get` returns it; deleted documents have no row). The meta store's
// `s/view` says which record position the view reflects ("<format>:<position>"); it must equal
// `s/last_position`, or the view is not used (ostracon/runtime/browser/readview.py has the
// writer's side and the guarantees).
//
// peek never creates, upgrades or writes the database, never waits for the engine and never
// rejects: it resolves to {docs, position, reason}. `docs` is an Array (ordered by id in
// IndexedDB's key order: UTF-16 code units) or null when the view cannot be used — `reason`
// then says why ("missing": no such database; "no read view": written by an older version;
// "stale": the view does not reflect the stored records; "damaged: …": a row or the marker is
// malformed (hostile or broken storage); "unavailable: …"; "timeout"). A page that gets null
// waits for the engine. The values are a cache of the engine's reads, not verified data.

const DB_PREFIX = "ostracon:";
export const VIEW_FORMAT = 1;
// How long peek waits for IndexedDB before giving up: a first paint later than this is no
// longer first; the engine's answer is not far behind.
export const PEEK_TIMEOUT_MS = 3000;

const META_VIEW = "s/view";
const META_LAST = "s/last_position";

function ascii(v) {
  if (v === undefined) return null;
  if (!(v instanceof Uint8Array)) return false;
  let s = "";
  for (const b of v) {
    if (b < 0x20 || b > 0x7e) return false;
    s += String.fromCharCode(b);
  }
  return s;
}

function plainObject(v) {
  if (v === null || typeof v !== "object") return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// Why a row cannot be shown (null: it can).
function rowProblem(key, doc, collection) {
  if (!Array.isArray(key) || key.length !== 2 || key[0] !== collection || typeof key[1] !== "string")
    return "a key is not [collection, id]";
  if (!plainObject(doc)) return `row ${key[1]} is not an object`;
  if (doc._id !== key[1] || doc._collection !== collection) return `row ${key[1]} names another document`;
  if (doc._deleted !== false) return `row ${key[1]} is not a live document`;
  if (!Number.isSafeInteger(doc._version) || doc._version < 1) return `row ${key[1]} has no version`;
  if (!Array.isArray(doc._heads) || !doc._heads.every((h) => typeof h === "string"))
    return `row ${key[1]} has no heads`;
  return null;
}

// The stored documents of `collection` in the database `name` (the name given to
// Ostracon.open). opts: {limit} (at most this many documents), {timeoutMs}.
export function peek(name, collection, opts = {}) {
  const limit = opts && Number.isSafeInteger(opts.limit) && opts.limit >= 0 ? opts.limit : undefined;
  const timeoutMs = opts && typeof opts.timeoutMs === "number" ? opts.timeoutMs : PEEK_TIMEOUT_MS;
  return new Promise((resolve) => {
    let done = false;
    let db = null;
    const finish = (docs, reason, position = null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (db) db.close();
      resolve({ docs, reason, position });
    };
    const timer = setTimeout(() => finish(null, "timeout"), timeoutMs);
    if (typeof name !== "string" || !name || typeof collection !== "string" || !collection) {
      finish(null, "unavailable: peek needs a database name and a collection name");
      return;
    }
    let req;
    try {
      req = globalThis.indexedDB.open(DB_PREFIX + name);
    } catch (e) {
      finish(null, `unavailable: ${e && e.name ? e.name : e}`);
      return;
    }
    // No such database: opening without a version would create an empty one; abort instead.
    req.onupgradeneeded = () => {
      try { req.transaction.abort(); } catch (_) { /* already aborted */ }
      finish(null, "missing");
    };
    req.onerror = (ev) => {
      if (ev && ev.preventDefault) ev.preventDefault();
      finish(null, req.error && req.error.name === "AbortError" ? "missing" : `unavailable: ${req.error && req.error.name}`);
    };
    req.onblocked = () => finish(null, "unavailable: blocked");
    req.onsuccess = () => {
      db = req.result;
      // The engine upgrading the database's layout must never wait for a page's read.
      db.onversionchange = () => { db.close(); finish(null, "unavailable: upgraded meanwhile"); };
      if (done) { db.close(); return; }
      if (!db.objectStoreNames.contains("view") || !db.objectStoreNames.contains("meta")) {
        finish(null, "no read view");
        return;
      }
      let tx;
      try {
        tx = db.transaction(["meta", "view"], "readonly");
      } catch (e) {
        finish(null, `unavailable: ${e && e.name}`);
        return;
      }
      const got = {};
      const meta = tx.objectStore("meta");
      meta.get(META_VIEW).onsuccess = (ev) => { got.marker = ev.target.result; };
      meta.get(META_LAST).onsuccess = (ev) => { got.last = ev.target.result; };
      // [collection] < [collection, id] < [collection, []]: arrays sort after strings.
      const range = IDBKeyRange.bound([collection], [collection, []]);
      const vs = tx.objectStore("view");
      vs.getAllKeys(range, limit).onsuccess = (ev) => { got.keys = ev.target.result; };
      vs.getAll(range, limit).onsuccess = (ev) => { got.docs = ev.target.result; };
      tx.onabort = () => finish(null, `unavailable: ${tx.error && tx.error.name}`);
      tx.oncomplete = () => {
        const marker = ascii(got.marker);
        const last = ascii(got.last);
        if (marker === null) return finish(null, "stale");
        const m = marker === false ? null : /^([0-9]+):(0|[1-9][0-9]{0,15})$/.exec(marker);
        if (!m || last === false || (last !== null && !/^(0|[1-9][0-9]{0,15})$/.test(last)))
          return finish(null, "damaged: the view's marker is malformed");
        if (Number(m[1]) !== VIEW_FORMAT) return finish(null, "no read view");
        if (m[2] !== (last === null ? "0" : last)) return finish(null, "stale");
        const keys = got.keys || [];
        const docs = got.docs || [];
        if (keys.length !== docs.length) return finish(null, "damaged: keys and rows differ");
        for (let i = 0; i < docs.length; i++) {
          const problem = rowProblem(keys[i], docs[i], collection);
          if (problem) return finish(null, `damaged: ${problem}`);
        }
        finish(docs, null, Number(m[2]));
      };
    };
  });
}
