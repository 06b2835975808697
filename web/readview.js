// Reading the materialized read view without the engine: first paint.
//
//   import Ostracon from "./ostracon.js";
//   const { docs, next, reason } = await Ostracon.peek("notes", "todos", { limit: 50 });
//   if (docs) paint(docs);                 // the first screen, before Python has started
//   // … then the rest in pages: Ostracon.peek("notes", "todos", { after: next, limit: 500 })
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
// rejects: it resolves to {docs, next, position, reason, timing}. `docs` is an Array or null
// when the view cannot be used — `reason` then says why ("missing": no such database; "no read
// view": written by an older version; "stale": the view does not reflect the stored records;
// "damaged: …": a row or the marker is malformed (hostile or broken storage); "unavailable:
// …"; "timeout"). A page that gets null waits for the engine. The values are a cache of the
// engine's reads, not verified data.
//
// Order: a range read (no `ids`) returns documents by id in IndexedDB's key order (UTF-16 code
// units, what JS `<` does on strings); `ids` returns the rows of those ids in the order given.
// `position` is the record position the rows reflect: pages read with `after` belong to one
// state of the view only while their positions are equal (the engine wrote in between when
// they differ; start over, or wait for the engine). `timing` ({openMs, readMs}: opening the
// database, then reading and checking the rows) is for diagnostics and benchmarks.
const DB_PREFIX = "ostracon:";
export const VIEW_FORMAT = 1;
// How long peek waits for IndexedDB before giving up: a first paint later than this is no
// longer first; the engine's answer is not far behind.
export const PEEK_TIMEOUT_MS = 3000;
// Most ids one peek reads by key (`ids`): a first screen is a few dozen rows; a longer list is
// a caller bug or hostile input (e.g. a tampered hint in localStorage), not a screen.
export const PEEK_MAX_IDS = 1000;

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

// Why the options cannot be used (null: they can). Every option is checked before IndexedDB is
// touched, so a bad call answers at once.
function optionsProblem(opts) {
  // IndexedDB reads a count of 0 as "all": a limit is at least 1.
  if (opts.limit !== undefined && !(Number.isSafeInteger(opts.limit) && opts.limit >= 1))
    return "limit must be a positive integer";
  if (opts.after !== undefined && opts.after !== null && typeof opts.after !== "string")
    return "after must be a document id";
  if (opts.ids !== undefined) {
    if (!Array.isArray(opts.ids) || opts.ids.length > PEEK_MAX_IDS || !opts.ids.every((i) => typeof i === "string"))
      return `ids must be an array of at most ${PEEK_MAX_IDS} document ids`;
    if (opts.after !== undefined && opts.after !== null) return "ids and after do not combine";
  }
  if (opts.timeoutMs !== undefined && !(typeof opts.timeoutMs === "number" && opts.timeoutMs >= 0))
    return "timeoutMs must be a non-negative number";
  return null;
}

// The stored documents of `collection` in the database `name` (the name given to
// Ostracon.open). opts (all optional):
//   limit      at most this many documents (default: all of them; a first screen passes
//              its row count, since reading 10,000 rows costs the page far more than 50);
//   after      an id: only documents after it in key order (paging: pass the previous
//              answer's `next`; default: from the first id);
//   ids        read exactly these ids (absent ones are left out; ≤ PEEK_MAX_IDS), in the order
//              given — e.g. the first screen of an app whose order is not the key order;
//   timeoutMs  give up after this long (default PEEK_TIMEOUT_MS).
// `next` is the id to pass as `after` for the following page, or null when no documents are
// left in the range (always null for `ids`). Bad options resolve to docs null with reason
// "unavailable: …".
export function peek(name, collection, opts = {}) {
  opts = opts && typeof opts === "object" ? opts : {};
  const problem = optionsProblem(opts);
  const limit = opts.limit;
  const after = typeof opts.after === "string" ? opts.after : null;
  const ids = opts.ids;
  const timeoutMs = typeof opts.timeoutMs === "number" ? opts.timeoutMs : PEEK_TIMEOUT_MS;
  return new Promise((resolve) => {
    let done = false;
    let db = null;
    let timer = null;
    const t0 = performance.now();
    let opened = null;
    const finish = (docs, reason, position = null, next = null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (db) db.close();
      const end = performance.now();
      const timing = { openMs: (opened ?? end) - t0, readMs: opened === null ? 0 : end - opened };
      resolve({ docs, next, reason, position, timing });
    };
    if (typeof name !== "string" || !name || typeof collection !== "string" || !collection) {
      finish(null, "unavailable: peek needs a database name and a collection name");
      return;
    }
    if (problem) {
      finish(null, `unavailable: ${problem}`);
      return;
    }
    timer = setTimeout(() => finish(null, "timeout"), timeoutMs);
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
      opened = performance.now();
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
      const vs = tx.objectStore("view");
      if (ids) {
        got.keys = ids.map((id) => [collection, id]);
        got.docs = new Array(ids.length);
        ids.forEach((id, i) => { vs.get([collection, id]).onsuccess = (ev) => { got.docs[i] = ev.target.result; }; });
      } else {
        // [collection] < [collection, id] < [collection, []]: arrays sort after strings.
        const range = after === null
          ? IDBKeyRange.bound([collection], [collection, []])
          : IDBKeyRange.bound([collection, after], [collection, []], true, false);
        // One key more than asked says whether a next page exists, without reading its row.
        const keyCount = limit === undefined ? undefined : limit + 1;
        vs.getAllKeys(range, keyCount).onsuccess = (ev) => { got.keys = ev.target.result; };
        vs.getAll(range, limit).onsuccess = (ev) => { got.docs = ev.target.result; };
      }
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
        let keys = got.keys || [];
        let docs = got.docs || [];
        let next = null;
        if (ids) {
          const present = docs.map((d) => d !== undefined);
          keys = keys.filter((_k, i) => present[i]);
          docs = docs.filter((_d, i) => present[i]);
        } else if (limit !== undefined && keys.length > limit) {
          keys = keys.slice(0, limit);
          next = keys[limit - 1][1];
        }
        if (keys.length !== docs.length) return finish(null, "damaged: keys and rows differ");
        for (let i = 0; i < docs.length; i++) {
          const problem = rowProblem(keys[i], docs[i], collection);
          if (problem) return finish(null, `damaged: ${problem}`);
        }
        finish(docs, null, Number(m[2]), next);
      };
    };
  });
}
