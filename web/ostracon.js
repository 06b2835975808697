// Ostracon for the browser: the main-thread ES module.
//
//   import Ostracon from "./ostracon.js";
//   const db = await Ostracon.open({name: "notes", space: {passphrase, name: "family"},
//                                   onProgress: (p) => render(p)});
//   const todos = db.collection("todos");
//   const id = await todos.create({title: "milk", done: false});
//   await todos.patch(id, {done: true});
//   const off = todos.subscribe((ev) => refresh(ev));
//
// The engine runs in a dedicated Web Worker (worker.js): the UI thread never runs Python and
// never blocks. Every method returns a Promise. Errors reject with a JS Error whose `name` is
// the Python error class (ValidationError, ConflictError, NotFoundError, ...), `message` its
// message, and `names` the class and its bases (`err.names.includes("OstraconError")`); a
// refused `createMany` also names the refused document's position (`opIndex`).
// Value conversion rules: docs/BROWSER.md.
//
// A Database talks to its engine through an engine connection: `WorkerEngine` (this tab's own
// worker) or `TabEngine` (tabs.js: the tabs of one origin share one worker, whichever tab runs
// it). Database and Collection are the same classes either way.

import { TabEngine, tabsAvailable, unsendable } from "./tabs.js";
import { peek } from "./readview.js";
import { openText, TextHandle, textDiff, codePointOffset, utf16Offset } from "./text.js";

const HERE = new URL(".", import.meta.url);
// How long close() waits for the engine to flush and stop before it ends the worker anyway.
// Writes are durable locally once flushed (the first thing close does); what may be cut short
// is only the goodbye to an unreachable relay. 5 s covers a flush of a full sink batch on a
// slow device many times over.
export const CLOSE_TIMEOUT_MS = 5000;
// Deepest nesting of a call's arguments, as the engine counts it (the argument list is level
// 0; runtime/browser/convert.py MAX_DEPTH). Checked before the arguments leave the page: a
// few thousand levels deep, the browser copies a message but cannot deliver it to the worker
// or the other tabs (it is dropped with a "messageerror"), and the call would never settle.
export const MAX_DEPTH = 100;

function tooDeep(v, depth) {
  if (v === null || typeof v !== "object" || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return false;
  if (depth > MAX_DEPTH) return true;
  const items = v instanceof Map ? [...v.keys(), ...v.values()] : v instanceof Set ? [...v] : Object.values(v);
  return items.some((x) => tooDeep(x, depth + 1));
}

export class OstraconError extends Error {
  constructor(info) {
    super(info.message);
    this.name = info.name || "OstraconError";
    this.names = info.names || [this.name];
    // createMany: the position in `docs` of the document that was refused (the batch is undone).
    if (typeof info.opIndex === "number") this.opIndex = info.opIndex;
    if (info.traceback) this.pythonTraceback = info.traceback;
  }

  // err.is("StorageError") — true for the class and any subclass (DiskFullError...).
  is(name) {
    return this.names.includes(name);
  }
}

export function closedError(message = "the database is closed") {
  return new OstraconError({ name: "ClosedError", message, names: ["ClosedError", "OstraconError"] });
}

// db.status: an EventTarget with the current state. Events (CustomEvent, data in `detail`):
//   "progress" {phase, detail, ms}  while opening (phases: pyodide, packages, host, space,
//                                   storage, replay, ready)
//   "ready"    {info}               the database is open
//   "sync"     {state, detail}      relay connection: "disabled" | "connecting" | "online" | "offline"
//   "role"     {role}               "leader" (this tab runs the engine) | "follower" (tabs only)
//   "leader"   {info}               another tab took over the engine: rescan
//   "error"    {error}              a failure not tied to a call (worker crashed...)
//   "background" {errors, last}     background work failed (a flush no call waited for, the
//                                   read view's rows, compaction): last = {where, error}; the
//                                   work is retried later and a failed flush keeps its batch
//   "closed"   {}
export class Status extends EventTarget {
  constructor() {
    super();
    this.state = "opening";
    this.sync = "disabled";
    this.syncDetail = { state: "disabled" };
    this.role = null;
    this.progress = null;
    this.info = null;
    this.background = { errors: 0, last: null };
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setBackground(detail) {
    this.background = detail;
    this._emit("background", detail);
  }

  _setSync(state, detail) {
    this.sync = state;
    this.syncDetail = { ...(detail || {}), state };
    this._emit("sync", { state, detail: detail || { state } });
  }
}

// The engine in this tab's own dedicated worker.
export class WorkerEngine {
  constructor(options, status) {
    this.options = options;
    this.status = status;
    this.worker = null;
    this.nextId = 1;
    this.pending = new Map();
    this.subs = new Map();
  }

  // Start the worker and open the database; resolves to the database's info.
  async start() {
    const url = this.options.workerURL || new URL("worker.js", HERE);
    const worker = new Worker(url, { type: "module", name: `ostracon:${this.options.name}` });
    this.worker = worker;
    worker.onmessage = (ev) => this._onMessage(ev.data);
    worker.onerror = (ev) => {
      const err = new OstraconError({ name: "WorkerError", message: ev.message || "the Ostracon worker failed" });
      this.status._emit("error", { error: err });
      this._failAll(err);
    };
    const { onProgress, workerURL, tabs, ...rest } = this.options;
    let info;
    try {
      info = await this._send({ type: "open", options: rest });
    } catch (e) {
      this.terminate();
      throw e;
    }
    // The page's online/offline events too (a worker may not get them in every browser).
    if (typeof window !== "undefined") {
      this._onNetwork = () => { if (this.worker) this.call("network", [navigator.onLine]).catch(() => {}); };
      window.addEventListener("online", this._onNetwork);
      window.addEventListener("offline", this._onNetwork);
    }
    return info;
  }

  _onMessage(m) {
    if (m.type === "reply") {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new OstraconError(m.error));
      else p.resolve(m.result);
    } else if (m.type === "events") {
      const cb = this.subs.get(m.sub);
      if (cb) for (const e of m.events) {
        try { cb(e); } catch (err) { console.error("Ostracon subscriber failed", err); }
      }
    } else if (m.type === "progress") {
      const p = { phase: m.phase, detail: m.detail, ms: m.ms };
      this.status.progress = p;
      this.status._emit("progress", p);
      if (this.options.onProgress) {
        try { this.options.onProgress(p); } catch (err) { console.error("onProgress failed", err); }
      }
    } else if (m.type === "status") {
      this.status._setSync(m.state, m.detail);
    } else if (m.type === "background") {
      this.status._setBackground(m.detail);
    }
  }

  _failAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  _send(msg) {
    if (!this.worker) return Promise.reject(closedError());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      try {
        this.worker.postMessage({ ...msg, id });
      } catch (e) {
        reject(new OstraconError(unsendable(e)));
        return;
      }
      this.pending.set(id, { resolve, reject });
    });
  }

  call(method, args) {
    return this._send({ type: "call", method, args });
  }

  // → a handle for unsubscribe; cb gets one event at a time.
  async subscribe(collection, buffer, cb) {
    const sid = await this.call("subscribe", [collection, buffer]);
    this.subs.set(sid, cb);
    return sid;
  }

  async unsubscribe(sid) {
    if (this.subs.delete(sid)) await this.call("unsubscribe", [sid]);
  }

  // Flush and close inside the worker (bounded by CLOSE_TIMEOUT_MS), then end it; pending
  // calls reject with ClosedError.
  async close() {
    if (!this.worker) return;
    let timer;
    try {
      await Promise.race([
        this.call("close", []),
        new Promise((resolve) => { timer = setTimeout(resolve, CLOSE_TIMEOUT_MS); }),
      ]);
    } finally {
      clearTimeout(timer);
      this.terminate();
    }
  }

  terminate() {
    if (this._onNetwork) {
      window.removeEventListener("online", this._onNetwork);
      window.removeEventListener("offline", this._onNetwork);
      this._onNetwork = null;
    }
    if (this.worker) this.worker.terminate();
    this.worker = null;
    this.subs.clear();
    this._failAll(closedError());
  }
}

export class Collection {
  constructor(db, name) {
    this.db = db;
    this.name = name;
  }

  _call(method, ...args) {
    return this.db._call(method, this.name, ...args);
  }

  // create(doc) / create(doc, id) / create(doc, {id}) → the document id
  create(doc, id) {
    if (id && typeof id === "object") id = id.id;
    return this._call("create", doc, id ?? null);
  }

  // Many documents in one round trip to the worker, atomically: all are created or none
  // (a refused one rejects with a message starting "op N:"; at most 1000 documents).
  createMany(docs) { return this._call("createMany", docs); }

  // get(id) / get(id, {at}) → the document or null; `at` = commit CID or list of head CIDs.
  get(id, opts) { return this._call("get", id, opts && opts.at != null ? opts.at : null); }
  getMany(ids) { return this._call("getMany", ids); }
  // scan({prefix, after, limit, includeDeleted}) → {docs, next} (next: cursor for the
  // following page, or null); includeDeleted lists deleted documents too (`_deleted: true`).
  scan(opts) { return this._call("scan", opts || {}); }
  // find(filter, {order, limit}) → documents (DefraDB-style filter: _eq _gt _in _and ...)
  find(filter, opts) { return this._call("find", filter ?? null, opts || {}); }
  // findPage(filter, {order, limit, offset, after}) → {docs, next}: keyset pagination
  // (pass `next` as {after} with the same filter and order for the following page).
  findPage(filter, opts) { return this._call("findPage", filter ?? null, opts || {}); }
  // Which path find() would take (index with bounds, id scan, scan or refused).
  explain(filter, opts) { return this._call("explain", filter ?? null, opts || {}); }
  count() { return this._call("count"); }
  // createIndex(fields, {unique, name}) → index name; fields: "a" | ["a", "b.c"]
  createIndex(fields, opts) { return this._call("createIndex", fields, opts || {}); }
  dropIndex(name) { return this._call("dropIndex", name); }
  // [{name, fields, unique, state, entries}]
  indexes() { return this._call("indexes"); }
  // setSchema(sdl) → version id; the SDL must define `type <collection name>`
  setSchema(sdl) { return this._call("setSchema", sdl); }
  // update/patch/delete(id, ..., {ifVersion, ifHeads, where}) → commit CID; ConflictError
  // when a precondition fails (nothing changes). patch also takes {unset: [field, ...]}.
  update(id, doc, opts) { return this._call("update", id, doc, opts || {}); }
  patch(id, fields, opts) { return this._call("patch", id, fields, opts || {}); }
  delete(id, opts) { return this._call("delete", id, opts || {}); }
  increment(id, field, by = 1) { return this._call("increment", id, field, by); }
  history(id) { return this._call("history", id); }
  blame(id) { return this._call("blame", id); }
  // text(id, field, {follow}) → a TextHandle on a collaborative text field (text.js): a field
  // holding a plain string becomes a text holding it at the first edit. UTF-16 offsets.
  text(id, field, opts) { return openText(this, id, field, opts || {}); }

  // subscribe(cb) → unsubscribe(); cb gets change events of this collection
  // ({kind: "change", id, version, deleted, ...}; kind "overflow" means: rescan).
  subscribe(cb) { return this.db.subscribe(cb, { collection: this.name }); }
}

export class Database {
  constructor(engine, status) {
    this._engine = engine;
    this.status = status;
    this._collections = new Map();
    this._closed = false;
    this._closing = null;
    this.ready = null; // set by connect(): resolves to this database once open
  }

  get info() { return this.status.info; }
  set info(v) { this.status.info = v; }
  // "leader" when this tab runs the engine, "follower" when another tab does (tabs: "share").
  get role() { return this.status.role; }

  collection(name) {
    let c = this._collections.get(name);
    if (!c) {
      c = new Collection(this, name);
      this._collections.set(name, c);
    }
    return c;
  }

  // Every call goes through here: after close() it rejects at once with ClosedError.
  _call(method, ...args) {
    if (this._closed) return Promise.reject(closedError());
    // Trailing undefined arguments are dropped so Python defaults apply.
    while (args.length && args[args.length - 1] === undefined) args.pop();
    if (tooDeep(args, 0)) {
      return Promise.reject(new OstraconError({ name: "ValidationError", names: ["ValidationError", "OstraconError"],
        message: `value nested deeper than ${MAX_DEPTH} levels` }));
    }
    return this._engine.call(method, args);
  }

  // subscribe(cb, {collection, buffer}) → a function that unsubscribes (returns a Promise).
  subscribe(cb, opts = {}) {
    if (typeof cb !== "function") throw new TypeError("subscribe needs a callback");
    if (this._closed) {
      const off = async () => {};
      off.ready = Promise.reject(closedError());
      return off;
    }
    let handle = null;
    let cancelled = false;
    const ready = this._engine.subscribe(opts.collection ?? null, opts.buffer ?? null, cb).then((h) => {
      handle = h;
      if (cancelled) return this._engine.unsubscribe(h);
      return undefined;
    });
    const off = async () => {
      cancelled = true;
      await ready;
      if (handle != null && !this._closed) await this._engine.unsubscribe(handle);
      handle = null;
    };
    off.ready = ready;
    return off;
  }

  // Resolves once every earlier write is durable in IndexedDB.
  flush() { return this._call("flush"); }
  // One string (ost2…) another device can join this space with (it carries the space key).
  // In a member space ({create}, {invite}, {} or {migrate} at open) it admits one device:
  // opts {role: "writer" (default) | "reader" | "admin"}; only admins invite. relayUrl
  // defaults to the relay this database syncs with: invite({role: "reader"}) works too.
  invite(relayUrl, opts = {}) {
    if (relayUrl && typeof relayUrl === "object") [relayUrl, opts] = [null, relayUrl];
    return this._call("invite", relayUrl ?? null, opts);
  }
  // [{actor, fingerprint, role, me}] of the space's members ([] for an open space).
  members() { return this._call("members"); }
  // Remove a member (admins only): the space key rotates, the removed device reads nothing
  // written afterwards and the relay refuses it. Resolves to the members left.
  remove(actor) { return this._call("remove", actor); }
  stateHash() { return this._call("stateHash"); }
  heads() { return this._call("heads"); }
  versionVector() { return this._call("versionVector"); }
  collections() { return this._call("collections"); }
  changes(opts = {}) { return this._call("changes", opts.collection ?? null, opts.after ?? null, opts.limit ?? null); }
  blocksSince(vector) { return this._call("blocksSince", vector ?? {}); }
  applyBlocks(envelopes) { return this._call("applyBlocks", envelopes); }
  // defineSchema(sdl) → {collection: version id} (docs/QUERIES.md)
  defineSchema(sdl) { return this._call("defineSchema", sdl); }
  schemaVersions() { return this._call("schemaVersions"); }
  schemaHistory(name) { return this._call("schemaHistory", name); }
  // graphql(query, variables, {operationName, allowMutations}) → {data, errors}
  graphql(query, variables, opts) { return this._call("graphql", query, variables ?? null, opts || {}); }
  // The sync client's status ({state, pending, peers, synced, error, ..., gate: {heldSteps,
  // longestHoldMs, heldNow, yields, yieldTimeouts}}, docs/BROWSER.md) or null.
  syncStatus() { return this._call("syncStatus"); }
  refreshInfo() { return this._call("info").then((i) => (this.info = i)); }
  // Rewrite the read view Ostracon.peek reads (readview.js) from the engine's documents, in
  // one transaction; resolves to the number of documents written. For a page whose peek
  // found the view damaged (the engine also rebuilds it at open when it is out of step).
  rebuildView() { return this._call("rebuildView"); }

  // Flush, close the database and stop the worker (which releases the IndexedDB lock).
  // Resolves within CLOSE_TIMEOUT_MS even when the relay is unreachable; every call made
  // after close() rejects at once with ClosedError.
  close() {
    if (!this._closing) {
      this._closed = true;
      this._closing = (async () => {
        try {
          await this._engine.close();
        } finally {
          this.status.state = "closed";
          this.status._emit("closed", {});
        }
      })();
    }
    return this._closing;
  }
}

// Start opening a database and return it at once (state "opening"); `db.ready` resolves to
// it once open (or rejects, and the database is closed). Options as for `open`.
export function connect(options = {}) {
  if (!options || typeof options.name !== "string" || !options.name) {
    throw new OstraconError({ name: "ValidationError", message: "Ostracon.open needs {name}", names: ["ValidationError", "OstraconError"] });
  }
  const status = new Status();
  const mode = options.tabs ?? "share";
  if (mode !== "share" && mode !== "exclusive") {
    throw new OstraconError({ name: "ValidationError", message: 'tabs must be "share" or "exclusive"', names: ["ValidationError", "OstraconError"] });
  }
  const share = mode === "share" && tabsAvailable();
  const engine = share
    ? new TabEngine(options, status, (o) => new WorkerEngine(o, status))
    : new WorkerEngine(options, status);
  if (!share) status.role = "leader";
  const db = new Database(engine, status);
  db.ready = engine.start().then((info) => {
    status.info = info;
    status.state = "ready";
    status._emit("ready", { info });
    return db;
  }, (e) => {
    db._closed = true;
    status.state = "closed";
    throw e;
  });
  return db;
}

// Open (or create) a database.
//   name        IndexedDB database name
//   tabs        "share" (default: the tabs of this origin that open `name` share one engine,
//               tabs.js) or "exclusive" (a second tab opening `name` gets LockedError)
//   space       {create: true, name[, passphrase]}  a new random space, this device its admin
//               (the optional passphrase only locks this device's copy in IndexedDB; others
//               join with invites)
//               | {invite[, passphrase]}  join the space of an ost2 invite
//               | {} or {passphrase}  the space this database keeps (created or joined here)
//               | {migrate: {passphrase, name}[, passphrase]}  move a passphrase space of an
//                 earlier version to a new random space (explicit: nothing forks silently)
//               | {passphrase, name[, iterations]} (a passphrase space of an earlier version)
//               | {key, name}  (optional). A wrong passphrase, or an invite of another space
//               than the one this database keeps, rejects with WrongKeyError.
//   relay       ws:// URL of the relay: sync starts at open (needs `space`); progress in
//               db.status "sync" events ({state: connecting|online|offline|stopped, detail});
//               "broadcast": sync with this origin's other tabs/workers over BroadcastChannel,
//               no relay (docs/TRANSPORTS.md)
//   algorithm   "ed25519" (default) or "p256": the signature algorithm of the identity a new
//               database gets (an existing one keeps its own; asking for another is an error)
//   onProgress  callback for startup progress ({phase, detail, ms})
//   workerURL   where worker.js is (default: next to this module)
export function open(options = {}) {
  try {
    return connect(options).ready;
  } catch (e) {
    return Promise.reject(e);
  }
}

// Ostracon.peek(name, collection, {limit, after, ids, timeoutMs}) → {docs, next, position,
// reason}: stored documents from the read view, without the engine (first paint, then pages
// with `after: next`; readview.js).
export { peek, TextHandle, textDiff, codePointOffset, utf16Offset };
export const Ostracon = { open, connect, peek, OstraconError, Database, Collection, Status, TextHandle, textDiff };
export default Ostracon;
