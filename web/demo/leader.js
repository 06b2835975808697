// One engine per database, however many tabs are open.
//
// The browser runtime allows exactly one writer per IndexedDB database (a second
// Ostracon.open gets LockedError). So tabs elect a leader with the Web Locks API: the tab
// that holds the lock `ostracon-pwa-leader:<name>` opens the database (its Web Worker owns
// IndexedDB); every other tab is a follower and sends its calls over a BroadcastChannel.
// When the leader tab goes away the browser releases its lock, the next tab in the lock
// queue becomes leader, opens the database and announces itself; followers then re-send
// every call that was not acknowledged yet.
//
// Why nothing is lost on handover: the leader acknowledges a write from a follower only
// after `db.flush()` (the write is in IndexedDB). A follower keeps each call until that
// acknowledgement, so a write that died with the old leader is re-sent to the new one.
// Re-sending is safe: the app creates documents with ids it chose itself (a repeated create
// answers ConflictError "already exists", treated as success), and patch/update with the
// same fields converge to the same state.
//
// Messages on the channel (`ostracon-pwa:<name>`):
//   {t: "hello", tab}                              a tab looks for the leader
//   {t: "leader", tab, epoch, info, sync}          the leader (re)announces itself
//   {t: "call", tab, epoch, cid, method, args}     a follower's call (epoch: leader it targets)
//   {t: "reply", to, cid, result | error}          the leader's answer (after flush for writes)
//   {t: "events", events}                          change events (every collection)
//   {t: "sync", detail}                            the relay connection's status
//   {t: "bye", tab}                                the leader tab is going away

import Ostracon from "../ostracon.js";

// Calls that change data: the leader flushes before acknowledging them to a follower.
const WRITES = new Set(["create", "createMany", "update", "patch", "delete", "increment", "applyBlocks"]);
// How long a new leader keeps retrying Ostracon.open while the old leader's worker still
// holds the IndexedDB writer lock (the browser releases it when that worker is torn down,
// which can lag the tab's own lock by a few hundred ms).
const OPEN_RETRY_MS = 15000;
const OPEN_RETRY_STEP_MS = 150;
// Replies remembered per (tab, call id) so a call re-sent to the same leader is answered
// from memory instead of being run twice.
const REPLY_MEMORY = 500;

function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function errorInfo(e) {
  return { name: (e && e.name) || "Error", message: String((e && e.message) || e), names: (e && e.names) || [(e && e.name) || "Error"] };
}

function toError(info) {
  return new Ostracon.OstraconError(info);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class SharedCollection {
  constructor(shared, name) {
    this.shared = shared;
    this.name = name;
  }

  _call(method, ...args) { return this.shared.call(method, this.name, ...args); }
  create(doc, id) { return this._call("create", doc, id ?? null); }
  get(id, opts) { return this._call("get", id, opts && opts.at != null ? opts.at : null); }
  getMany(ids) { return this._call("getMany", ids); }
  scan(opts) { return this._call("scan", opts || {}); }
  find(filter, opts) { return this._call("find", filter ?? null, opts || {}); }
  count() { return this._call("count"); }
  update(id, doc, opts) { return this._call("update", id, doc, opts || {}); }
  patch(id, fields, opts) { return this._call("patch", id, fields, opts || {}); }
  delete(id, opts) { return this._call("delete", id, opts || {}); }
  increment(id, field, by = 1) { return this._call("increment", id, field, by); }
  history(id) { return this._call("history", id); }
  blame(id) { return this._call("blame", id); }

  // Every change event of this collection, whichever tab is the leader.
  subscribe(cb) {
    return this.shared.onEvents((events) => {
      const mine = events.filter((e) => e.kind === "overflow" || e.collection === this.name);
      if (mine.length) cb(mine);
    });
  }
}

// The database as every tab sees it. Events on `status` (CustomEvent, data in `detail`):
//   "role"     {role: "leader" | "follower", epoch}   this tab's role changed
//   "leader"   {epoch, info}                          a (new) leader is ready: rescan
//   "progress" {phase, detail, ms}                    startup progress (leader only)
//   "sync"     {state, ...}                           relay status
//   "error"    {error}                                the engine could not be opened
export class SharedDatabase {
  constructor(options) {
    this.options = options;
    this.name = options.name;
    this.tab = randomId();
    this.role = "follower";
    this.epoch = null; // the leader we talk to
    this.info = null;
    this.sync = { state: "disabled" };
    this.status = new EventTarget();
    this.db = null; // the real database, when this tab leads
    this._nextCall = 1;
    this._pending = new Map(); // cid -> {method, args, resolve, reject}
    this._replies = new Map(); // `${tab}:${cid}` -> reply (leader side)
    this._eventCbs = new Set();
    this._closed = false;
    this._ready = null;
    this._readyResolve = null;
    this._readyReject = null;
    this.ready = new Promise((res, rej) => { this._readyResolve = res; this._readyReject = rej; });
    this._releaseLeader = null;
    this.channel = new BroadcastChannel(`ostracon-pwa:${this.name}`);
    this.channel.onmessage = (ev) => this._onMessage(ev.data);
  }

  _emit(type, detail) {
    this.status.dispatchEvent(new CustomEvent(type, { detail }));
  }

  start() {
    this.channel.postMessage({ t: "hello", tab: this.tab });
    if (!navigator.locks) {
      // Without Web Locks there is no election: lead and let the runtime's own lock refuse
      // a second tab with a clear error.
      this._lead();
      return this.ready;
    }
    navigator.locks.request(`ostracon-pwa-leader:${this.name}`, () => {
      if (this._closed) return undefined;
      return new Promise((release) => {
        this._releaseLeader = release;
        this._lead().catch((e) => {
          this._emit("error", { error: e });
          this._readyReject(e);
          release();
        });
      });
    }).catch((e) => this._readyReject(e));
    return this.ready;
  }

  // ---- leader side -------------------------------------------------------------------

  async _lead() {
    this.role = "leader";
    const epoch = randomId();
    this._emit("role", { role: "leader", epoch });
    const deadline = performance.now() + OPEN_RETRY_MS;
    const { name, onProgress, ...rest } = this.options;
    let db;
    for (;;) {
      try {
        db = await Ostracon.open({
          name,
          ...rest,
          onProgress: (p) => { this._emit("progress", p); if (onProgress) onProgress(p); },
        });
        break;
      } catch (e) {
        if (e && e.name === "LockedError" && performance.now() < deadline) {
          await sleep(OPEN_RETRY_STEP_MS);
          continue;
        }
        throw e;
      }
    }
    this.db = db;
    this.info = db.info;
    db.status.addEventListener("sync", (ev) => {
      this.sync = { ...(ev.detail.detail || {}), state: ev.detail.state };
      this._emit("sync", this.sync);
      this.channel.postMessage({ t: "sync", detail: this.sync });
    });
    db.status.addEventListener("error", (ev) => this._emit("error", ev.detail));
    if (db.status.sync) this.sync = { state: db.status.sync };
    this._unsub = db.subscribe((ev) => this._leaderEvent(ev));
    await this._unsub.ready;
    this.epoch = epoch;
    // Our own calls made while we were a follower of a leader that just died: run them here.
    for (const [cid, p] of this._pending) this._runLocal(cid, p);
    this._announce();
    this._emit("leader", { epoch, info: this.info });
    this._readyResolve(this);
  }

  _announce() {
    this.channel.postMessage({ t: "leader", tab: this.tab, epoch: this.epoch, info: this.info, sync: this.sync });
  }

  // Events come one by one from the runtime; batch the ones of one task for the channel.
  _leaderEvent(ev) {
    if (!this._eventBatch) {
      this._eventBatch = [];
      queueMicrotask(() => {
        const events = this._eventBatch;
        this._eventBatch = null;
        this.channel.postMessage({ t: "events", events });
        this._deliver(events);
      });
    }
    this._eventBatch.push(ev);
  }

  async _execute(method, args, durable) {
    const result = await this.db._call(method, ...args);
    if (durable && WRITES.has(method)) await this.db.flush();
    return result;
  }

  async _runLocal(cid, p) {
    this._pending.delete(cid);
    try {
      p.resolve(await this._execute(p.method, p.args, p.durable));
    } catch (e) {
      if (p.sent && p.method === "create" && p.args[2] != null && e && e.name === "ConflictError" && /already exists/.test(e.message)) {
        p.resolve(p.args[2]); // the previous leader made it before dying
      } else {
        p.reject(e);
      }
    }
  }

  async _serve(m) {
    const key = `${m.tab}:${m.cid}`;
    let reply = this._replies.get(key);
    if (reply) {
      if (reply !== "running") this.channel.postMessage(reply);
      return;
    }
    this._replies.set(key, "running");
    try {
      const result = await this._execute(m.method, m.args, true);
      reply = { t: "reply", to: m.tab, cid: m.cid, result };
    } catch (e) {
      if (m.resent && m.method === "create" && m.args[2] != null && e && e.name === "ConflictError"
          && /already exists/.test(e.message)) {
        // The previous leader made it (durably) but died before answering.
        await this.db.flush();
        reply = { t: "reply", to: m.tab, cid: m.cid, result: m.args[2] };
      } else {
        reply = { t: "reply", to: m.tab, cid: m.cid, error: errorInfo(e) };
      }
    }
    this._replies.set(key, reply);
    if (this._replies.size > REPLY_MEMORY) this._replies.delete(this._replies.keys().next().value);
    this.channel.postMessage(reply);
  }

  // ---- follower side -----------------------------------------------------------------

  _onMessage(m) {
    if (!m || this._closed) return;
    switch (m.t) {
      case "hello":
        if (this.db && this.epoch) this._announce();
        break;
      case "leader":
        if (this.role === "leader") break; // a stale announcement from the previous leader
        if (m.epoch !== this.epoch) {
          this.epoch = m.epoch;
          this.info = m.info;
          if (m.sync) { this.sync = m.sync; this._emit("sync", this.sync); }
          // A new leader: everything not acknowledged goes to it.
          for (const [cid, p] of this._pending) {
            if (p.sent) p.resent = true;
            this._send(cid, p);
          }
          this._emit("leader", { epoch: m.epoch, info: m.info });
          this._readyResolve(this);
        }
        break;
      case "call":
        if (this.role === "leader" && this.db && m.epoch === this.epoch) this._serve(m);
        break;
      case "reply": {
        if (m.to !== this.tab) break;
        const p = this._pending.get(m.cid);
        if (!p) break;
        this._pending.delete(m.cid);
        if (m.error) p.reject(toError(m.error));
        else p.resolve(m.result);
        break;
      }
      case "events":
        if (this.role !== "leader") this._deliver(m.events);
        break;
      case "sync":
        if (this.role !== "leader") { this.sync = m.detail; this._emit("sync", this.sync); }
        break;
      case "bye":
        if (this.role !== "leader") {
          this.epoch = null; // hold calls until the next leader announces itself
          this._emit("sync", { ...this.sync, state: "handover" });
        }
        break;
      default:
        break;
    }
  }

  _send(cid, p) {
    p.sent = true;
    this.channel.postMessage({ t: "call", tab: this.tab, epoch: this.epoch, cid, method: p.method, args: p.args, resent: !!p.resent });
  }

  _deliver(events) {
    for (const cb of this._eventCbs) {
      try { cb(events); } catch (e) { console.error("event listener failed", e); }
    }
  }

  // ---- public ------------------------------------------------------------------------

  // call(method, ...args) → the result, wherever the engine runs. `args` must be
  // structured-cloneable (they cross a BroadcastChannel).
  call(method, ...args) {
    while (args.length && args[args.length - 1] === undefined) args.pop();
    if (this._closed) return Promise.reject(toError({ name: "ClosedError", message: "the database is closed", names: ["ClosedError", "OstraconError"] }));
    if (this.role === "leader" && this.db) return this._execute(method, args, false);
    const cid = this._nextCall++;
    return new Promise((resolve, reject) => {
      const p = { method, args, resolve, reject, durable: false };
      this._pending.set(cid, p);
      if (this.epoch) this._send(cid, p);
    });
  }

  collection(name) { return new SharedCollection(this, name); }
  flush() { return this.call("flush"); }

  // Number of calls sent but not acknowledged (shown as "waiting for the other tab").
  get unacknowledged() { return this._pending.size; }

  onEvents(cb) {
    this._eventCbs.add(cb);
    return () => this._eventCbs.delete(cb);
  }

  // The tab is going away (pagehide): tell followers a handover is coming. The lock is
  // released by the browser when the document is destroyed.
  leaving() {
    if (this.role === "leader") this.channel.postMessage({ t: "bye", tab: this.tab });
  }

  async close() {
    if (this._closed) return;
    this.leaving();
    this._closed = true;
    try {
      if (this.db) await this.db.close();
    } finally {
      this.channel.close();
      if (this._releaseLeader) this._releaseLeader();
    }
  }
}

export function openShared(options) {
  const s = new SharedDatabase(options);
  s.start();
  return s;
}
