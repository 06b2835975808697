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
// message, and `names` the class and its bases (`err.names.includes("OstraconError")`).
// Value conversion rules: docs/BROWSER.md.

const HERE = new URL(".", import.meta.url);

export class OstraconError extends Error {
  constructor(info) {
    super(info.message);
    this.name = info.name || "OstraconError";
    this.names = info.names || [this.name];
    if (info.traceback) this.pythonTraceback = info.traceback;
  }

  // err.is("StorageError") — true for the class and any subclass (DiskFullError...).
  is(name) {
    return this.names.includes(name);
  }
}

// db.status: an EventTarget with the current state. Events (CustomEvent, data in `detail`):
//   "progress" {phase, detail, ms}  while opening (phases: pyodide, packages, host, space,
//                                   storage, replay, ready)
//   "ready"    {info}               the database is open
//   "sync"     {state, detail}      relay connection: "disabled" | "connecting" | "online" | "offline"
//   "error"    {error}              a failure not tied to a call (worker crashed...)
//   "closed"   {}
export class Status extends EventTarget {
  constructor() {
    super();
    this.state = "opening";
    this.sync = "disabled";
    this.progress = null;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

class Rpc {
  constructor(worker, status) {
    this.worker = worker;
    this.status = status;
    this.nextId = 1;
    this.pending = new Map();
    this.subs = new Map();
    this.onProgress = null;
    worker.onmessage = (ev) => this._onMessage(ev.data);
    worker.onerror = (ev) => {
      const err = new OstraconError({ name: "WorkerError", message: ev.message || "the Ostracon worker failed" });
      status._emit("error", { error: err });
      this._failAll(err);
    };
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
      if (this.onProgress) {
        try { this.onProgress(p); } catch (err) { console.error("onProgress failed", err); }
      }
    } else if (m.type === "status") {
      this.status.sync = m.state;
      this.status._emit("sync", { state: m.state, detail: m.detail });
    }
  }

  _failAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  send(msg) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id });
    });
  }

  call(method, ...args) {
    // Trailing undefined arguments are dropped so Python defaults apply.
    while (args.length && args[args.length - 1] === undefined) args.pop();
    return this.send({ type: "call", method, args });
  }
}

export class Collection {
  constructor(db, name) {
    this.db = db;
    this.name = name;
  }

  _call(method, ...args) {
    return this.db._rpc.call(method, this.name, ...args);
  }

  // create(doc) / create(doc, id) / create(doc, {id}) → the document id
  create(doc, id) {
    if (id && typeof id === "object") id = id.id;
    return this._call("create", doc, id ?? null);
  }

  // Many documents in one round trip to the worker (not atomic: stops at the first error).
  createMany(docs) { return this._call("createMany", docs); }

  // get(id) / get(id, {at}) → the document or null; `at` = commit CID or list of head CIDs.
  get(id, opts) { return this._call("get", id, opts && opts.at != null ? opts.at : null); }
  getMany(ids) { return this._call("getMany", ids); }
  // scan({prefix, after, limit}) → {docs, next} (next: cursor for the following page, or null)
  scan(opts) { return this._call("scan", opts || {}); }
  // find(filter, {order, limit}) → documents (DefraDB-style filter: _eq _gt _in _and ...)
  find(filter, opts) { return this._call("find", filter ?? null, opts || {}); }
  count() { return this._call("count"); }
  // update/patch/delete(id, ..., {ifVersion, ifHeads, where}) → commit CID; ConflictError
  // when a precondition fails (nothing changes). patch also takes {unset: [field, ...]}.
  update(id, doc, opts) { return this._call("update", id, doc, opts || {}); }
  patch(id, fields, opts) { return this._call("patch", id, fields, opts || {}); }
  delete(id, opts) { return this._call("delete", id, opts || {}); }
  increment(id, field, by = 1) { return this._call("increment", id, field, by); }
  history(id) { return this._call("history", id); }
  blame(id) { return this._call("blame", id); }

  // subscribe(cb) → unsubscribe(); cb gets change events of this collection
  // ({kind: "change", id, version, deleted, ...}; kind "overflow" means: rescan).
  subscribe(cb) { return this.db.subscribe(cb, { collection: this.name }); }
}

export class Database {
  constructor(worker, rpc, status, info) {
    this._worker = worker;
    this._rpc = rpc;
    this.status = status;
    this.info = info;
    this._collections = new Map();
    this._closed = false;
  }

  collection(name) {
    let c = this._collections.get(name);
    if (!c) {
      c = new Collection(this, name);
      this._collections.set(name, c);
    }
    return c;
  }

  // subscribe(cb, {collection, buffer}) → a function that unsubscribes (returns a Promise).
  subscribe(cb, opts = {}) {
    if (typeof cb !== "function") throw new TypeError("subscribe needs a callback");
    let sid = null;
    let cancelled = false;
    const ready = this._rpc.call("subscribe", opts.collection ?? null, opts.buffer ?? null).then((id) => {
      sid = id;
      if (cancelled) return this._rpc.call("unsubscribe", id);
      this._rpc.subs.set(id, cb);
      return undefined;
    });
    const off = async () => {
      cancelled = true;
      await ready;
      if (sid != null && this._rpc.subs.delete(sid)) await this._rpc.call("unsubscribe", sid);
    };
    off.ready = ready;
    return off;
  }

  // Resolves once every earlier write is durable in IndexedDB.
  flush() { return this._rpc.call("flush"); }
  // One string another device can join this space with (it carries the space key). In a
  // member space ({create} or {invite} at open) it admits one device: opts {role:
  // "writer" (default) | "reader" | "admin"}; only admins invite.
  invite(relayUrl, opts = {}) { return this._rpc.call("invite", relayUrl, opts); }
  // [{actor, fingerprint, role, me}] of the space's members ([] for an open space).
  members() { return this._rpc.call("members"); }
  // Remove a member (admins only): the space key rotates, the removed device reads nothing
  // written afterwards and the relay refuses it. Resolves to the members left.
  remove(actor) { return this._rpc.call("remove", actor); }
  stateHash() { return this._rpc.call("stateHash"); }
  heads() { return this._rpc.call("heads"); }
  versionVector() { return this._rpc.call("versionVector"); }
  collections() { return this._rpc.call("collections"); }
  changes(opts = {}) { return this._rpc.call("changes", opts.collection ?? null, opts.after ?? null, opts.limit ?? null); }
  blocksSince(vector) { return this._rpc.call("blocksSince", vector ?? {}); }
  applyBlocks(envelopes) { return this._rpc.call("applyBlocks", envelopes); }
  // The sync client's status ({state, pending, peers, synced, error, ...}) or null.
  syncStatus() { return this._rpc.call("syncStatus"); }
  refreshInfo() { return this._rpc.call("info").then((i) => (this.info = i)); }

  // Internal / tests: raw RPC.
  _call(method, ...args) { return this._rpc.call(method, ...args); }

  // Flush, close the database and stop the worker (which releases the IndexedDB lock).
  async close() {
    if (this._closed) return;
    this._closed = true;
    try {
      await this._rpc.call("close");
    } finally {
      this._worker.terminate();
      this.status.state = "closed";
      this.status._emit("closed", {});
      this._rpc._failAll(new OstraconError({ name: "ClosedError", message: "the database is closed", names: ["ClosedError", "OstraconError"] }));
    }
  }
}

// Open (or create) a database in a new worker.
//   name        IndexedDB database name (one writer at a time: a second tab gets LockedError)
//   space       {create: true, passphrase, name}  a new random space, this device its admin
//               (the passphrase only locks it on this device; others join with invites)
//               | {invite[, passphrase]} | {passphrase} (unlock one made with create)
//               | {passphrase, name[, iterations]} (a passphrase space of an earlier version)
//               | {key, name}  (optional)
//   relay       ws:// URL of the relay: sync starts at open (needs `space`); progress in
//               db.status "sync" events ({state: connecting|online|offline|stopped, detail})
//   onProgress  callback for startup progress ({phase, detail, ms})
//   workerURL   where worker.js is (default: next to this module)
export async function open(options = {}) {
  if (!options || typeof options.name !== "string" || !options.name) {
    throw new OstraconError({ name: "ValidationError", message: "Ostracon.open needs {name}", names: ["ValidationError", "OstraconError"] });
  }
  const url = options.workerURL || new URL("worker.js", HERE);
  const worker = new Worker(url, { type: "module", name: `ostracon:${options.name}` });
  const status = new Status();
  const rpc = new Rpc(worker, status);
  rpc.onProgress = options.onProgress || null;
  const { onProgress, workerURL, ...rest } = options;
  let info;
  try {
    info = await rpc.send({ type: "open", options: rest });
  } catch (e) {
    worker.terminate();
    status.state = "closed";
    throw e;
  }
  status.state = "ready";
  status._emit("ready", { info });
  return new Database(worker, rpc, status, info);
}

export const Ostracon = { open, OstraconError, Database, Collection, Status };
export default Ostracon;
