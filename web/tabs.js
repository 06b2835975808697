// One engine per database, however many tabs of the origin open it
// (`Ostracon.open({name, tabs: "share"})`).
//
// The browser runtime allows one writer per IndexedDB database. So the tabs that open `name`
// elect a leader with the Web Locks API: the tab holding `ostracon-tabs:<name>` runs the
// engine in its worker (a WorkerEngine); every other tab is a follower and sends its calls
// over the BroadcastChannel `ostracon-tabs:<name>`. When the leader tab goes away the browser
// releases its lock, the next tab in the lock queue becomes leader, opens the database and
// announces itself; followers then re-send every call that was not acknowledged yet.
//
// Why nothing is lost on handover: the leader acknowledges a follower's write only after it is
// durable (flushed to IndexedDB; concurrent writes share one flush). A follower keeps each call
// until then, so a write that died with the old leader is re-sent to the new one. Re-sending
// is safe: a follower's create always carries an id (one is made here, in the engine's layout,
// when the caller gave none) and is re-sent with {resume: true}, which answers the id when the
// document already exists; patch/update with the same fields converge to the same state.
//
// Subscriptions: the leader holds one engine subscription to every collection and broadcasts
// its events; each tab filters them for its own subscribers. After a handover every
// subscriber gets one {kind: "overflow"} event (rescan: events may have been missed).
//
// A follower joins only a leader opened with the same space options (compared by digest);
// otherwise its open fails with WrongKeyError. Options that open the member space a database
// keeps ({create}, {invite}, {}, {passphrase}, {migrate}) all name that one space, so they
// compare equal (spaceIdentity).
//
// Messages on the channel:
//   {t: "hello", tab}                                   a tab looks for the leader
//   {t: "leader", tab, epoch, info, sync, background, spaceDigest}  the leader (re)announces itself
//   {t: "call", tab, epoch, cid, method, args, resent}  a follower's call
//   {t: "reply", to, cid, result | error}               the leader's answer (writes: once durable)
//   {t: "events", events}                               change events (every collection)
//   {t: "sync", state, detail}                          the relay connection's status
//   {t: "background", detail}                           background work failed (errors, last)
//   {t: "bye", tab}                                     the leader tab is going away

// Calls that change data: the leader acknowledges them to a follower once durable.
const WRITES = new Set(["create", "createMany", "update", "patch", "delete", "increment", "applyBlocks",
  "createIndex", "dropIndex", "setSchema", "defineSchema", "graphql", "invite", "remove"]);
// What a follower may ask the leader's engine to run: the Database, Collection and text-handle
// methods (ostracon.js, text.js). The engine's lifecycle (open, close, tick, events, network,
// subscribe, unsubscribe) stays with the leader tab: any page of the origin can post on the
// channel, and a call from it must not close or re-open the engine under the other tabs.
export const FOLLOWER_METHODS = new Set([
  "create", "createMany", "get", "getMany", "scan", "find", "findPage", "explain", "count", "createIndex",
  "dropIndex", "indexes", "setSchema", "defineSchema", "schemaVersions", "schemaHistory", "graphql", "update",
  "patch", "delete", "increment", "history", "blame", "info", "flush", "rebuildView", "syncStatus", "invite",
  "members", "remove", "stateHash", "heads", "versionVector", "collections", "changes", "blocksSince",
  "applyBlocks", "textOpen", "textClose", "textSplice", "textPull", "textAdopt", "textCursor", "textResolve",
  "textBlame", "textCommit"]);
// How long a new leader keeps retrying the open while the old leader's worker still holds the
// IndexedDB writer lock (the browser releases it when that worker is torn down, which can lag
// the tab's own lock by a few hundred ms).
const OPEN_RETRY_MS = 15000;
const OPEN_RETRY_STEP_MS = 150;
// Replies remembered per (tab, call id) so a call re-sent to the same leader is answered
// from memory instead of being run twice.
const REPLY_MEMORY = 500;
// Crockford base32, as the engine writes document ids.
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export function tabsAvailable() {
  return typeof BroadcastChannel !== "undefined" && !!(globalThis.navigator && navigator.locks);
}

function randomHex(n) {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (x) => x.toString(16).padStart(2, "0")).join("");
}

// A document id in the engine's layout: 64-bit stamp (ms << 16 | counter) then 64 random
// bits, base32, 26 characters; sorts by creation time like the engine's own.
let idCounter = 0;
let idLastMs = 0;
export function newDocId() {
  const ms = Date.now();
  idCounter = ms === idLastMs ? (idCounter + 1) & 0xffff : 0;
  idLastMs = ms;
  const rnd = crypto.getRandomValues(new Uint8Array(8));
  let n = (BigInt(ms) << 16n) | BigInt(idCounter);
  for (const b of rnd) n = (n << 8n) | BigInt(b);
  let s = "";
  for (let shift = 125n; shift >= 0n; shift -= 5n) s += CROCKFORD[Number((n >> shift) & 31n)];
  return s;
}

// What a `space` option names for the digest: member-space options (docs/BROWSER.md) open the
// space kept in the database whatever their form, so they are one value; others as given.
function spaceIdentity(space) {
  if (!space || typeof space !== "object" || "key" in space) return space;
  const member = "create" in space || "invite" in space || "migrate" in space || !("name" in space);
  return member ? { memberSpaceKeptInTheDatabase: true } : space;
}

async function digestOf(value) {
  const bytes = new TextEncoder().encode(JSON.stringify(value ?? null));
  return hexOf(await crypto.subtle.digest("SHA-256", bytes));
}

function hexOf(buf) {
  return Array.from(new Uint8Array(buf), (x) => x.toString(16).padStart(2, "0")).join("");
}

function errorInfo(e) {
  const info = { name: (e && e.name) || "Error", message: String((e && e.message) || e), names: (e && e.names) || [(e && e.name) || "Error"] };
  if (e && typeof e.opIndex === "number") info.opIndex = e.opIndex;
  return info;
}

function typed(info) {
  const e = new Error(info.message);
  e.name = info.name;
  e.names = info.names;
  if (typeof info.opIndex === "number") e.opIndex = info.opIndex;
  e.is = (n) => e.names.includes(n);
  return e;
}

// A call whose arguments the browser cannot copy to the engine (a function, a DOM node: a
// DataCloneError, or a RangeError past the copier's depth) fails as the engine would refuse it.
export function unsendable(e) {
  return typed({ name: "ValidationError", names: ["ValidationError", "OstraconError"],
    message: `cannot send these arguments to the engine: ${(e && e.message) || e}` });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class TabEngine {
  // makeLocal(options) → a WorkerEngine (not started) for when this tab leads.
  constructor(options, status, makeLocal) {
    this.options = options;
    this.status = status;
    this.makeLocal = makeLocal;
    this.name = options.name;
    this.tab = randomHex(8);
    this.epoch = null; // the leader we talk to
    this.leaderTab = null; // its tab id
    this.local = null; // our WorkerEngine, when we lead
    this._nextCall = 1;
    this._pending = new Map(); // cid -> {method, args, resolve, reject, sent, resent}
    this._replies = new Map(); // `${tab}:${cid}` -> reply (leader side)
    this._subs = new Map(); // local handle -> {collection, cb}
    this._nextSub = 1;
    this._closed = false;
    this._flushing = null;
    this._release = null;
    this._spaceDigest = null;
    this.channel = null;
  }

  _setRole(role) {
    if (this.status.role === role) return;
    this.status.role = role;
    this.status._emit("role", { role });
  }

  start() {
    return new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
      this._begin().catch(reject);
    });
  }

  async _begin() {
    this._spaceDigest = await digestOf(spaceIdentity(this.options.space));
    this.channel = new BroadcastChannel(`ostracon-tabs:${this.name}`);
    this.channel.onmessage = (ev) => this._onMessage(ev.data);
    this._setRole("follower");
    if (typeof addEventListener === "function") {
      this._onPageHide = () => this._bye();
      addEventListener("pagehide", this._onPageHide);
    }
    this.channel.postMessage({ t: "hello", tab: this.tab });
    navigator.locks.request(`ostracon-tabs:${this.name}`, () => {
      if (this._closed) return undefined;
      return new Promise((release) => {
        this._release = release;
        this._lead().catch((e) => {
          this._rejectReady(e);
          this.status._emit("error", { error: e });
          this._release = null;
          release();
        });
      });
    }).catch((e) => this._rejectReady(e));
  }

  // ---- leader side ---------------------------------------------------------------------

  async _lead() {
    this._setRole("leader");
    const deadline = performance.now() + OPEN_RETRY_MS;
    let info;
    for (;;) {
      const local = this.makeLocal(this.options);
      try {
        info = await local.start();
        this.local = local;
        break;
      } catch (e) {
        if (e && e.name === "LockedError" && performance.now() < deadline && !this._closed) {
          await sleep(OPEN_RETRY_STEP_MS);
          continue;
        }
        throw e;
      }
    }
    if (this._closed) {
      await this.local.close();
      return;
    }
    this.status.info = info;
    this._onSync = (ev) => this.channel.postMessage({ t: "sync", state: ev.detail.state, detail: ev.detail.detail });
    this.status.addEventListener("sync", this._onSync);
    this._onBackground = (ev) => this.channel.postMessage({ t: "background", detail: ev.detail });
    this.status.addEventListener("background", this._onBackground);
    await this.local.subscribe(null, null, (ev) => this._leaderEvent(ev));
    this.epoch = randomHex(8);
    const wasFollower = this._resolveReady === null;
    this._announce();
    if (wasFollower) {
      this.status._emit("leader", { info });
      this._deliver([{ kind: "overflow" }]);
    }
    // Our own calls made while we followed a leader that just died: run them here.
    for (const [cid, p] of this._pending) {
      if (p.sent) p.resent = true;
      this._runLocal(cid, p);
    }
    this._ready(info);
  }

  _ready(info) {
    if (this._resolveReady) {
      const r = this._resolveReady;
      this._resolveReady = null;
      r(info);
    }
  }

  _announce() {
    this.channel.postMessage({ t: "leader", tab: this.tab, epoch: this.epoch, info: this.status.info,
      sync: this.status.syncDetail, background: this.status.background, spaceDigest: this._spaceDigest });
  }

  // Events arrive one by one from the worker; the ones of one task go out as one message.
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

  // One flush shared by every write that completed before it started.
  _durable() {
    if (!this._flushing) {
      this._flushing = Promise.resolve().then(() => {
        this._flushing = null;
        return this.local.call("flush", []);
      });
    }
    return this._flushing;
  }

  async _execute(method, args, durable) {
    const result = await this.local.call(method, args);
    if (durable && WRITES.has(method)) await this._durable();
    return result;
  }

  async _runLocal(cid, p) {
    this._pending.delete(cid);
    try {
      p.resolve(await this._execute(p.method, resumeArgs(p), false));
    } catch (e) {
      p.reject(e);
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
      if (typeof m.method !== "string" || !FOLLOWER_METHODS.has(m.method) || !Array.isArray(m.args)) {
        throw typed({ name: "ValidationError", names: ["ValidationError", "OstraconError"],
          message: `another tab may not call ${JSON.stringify(String(m.method)).slice(0, 80)}` });
      }
      const result = await this._execute(m.method, resumeArgs(m), true);
      reply = { t: "reply", to: m.tab, cid: m.cid, result };
    } catch (e) {
      reply = { t: "reply", to: m.tab, cid: m.cid, error: errorInfo(e) };
    }
    this._replies.set(key, reply);
    if (this._replies.size > REPLY_MEMORY) this._replies.delete(this._replies.keys().next().value);
    if (!this._closed) this.channel.postMessage(reply);
  }

  // ---- follower side -------------------------------------------------------------------

  _onMessage(m) {
    if (!m || this._closed) return;
    switch (m.t) {
      case "hello":
        if (this.local && this.epoch) this._announce();
        break;
      case "leader":
        if (this.local) {
          // We hold the lock: this is a stale announcement of the previous leader (or a forged
          // one). Followers that switched to it would wait for replies nobody sends: re-announce.
          if (this.epoch && m.tab !== this.tab) this._announce();
          break;
        }
        if (m.spaceDigest !== this._spaceDigest) {
          if (this._rejectReady && this._resolveReady) {
            this._rejectReady(typed({ name: "WrongKeyError", names: ["WrongKeyError", "OstraconError"],
              message: `another tab has ${this.name} open with other space options` }));
            this._resolveReady = null;
            this.close();
          }
          break;
        }
        if (m.epoch !== this.epoch) {
          const handover = this.epoch !== null || this._resolveReady === null;
          this.epoch = m.epoch;
          this.leaderTab = m.tab;
          this.status.info = m.info;
          if (m.sync) this.status._setSync(m.sync.state, m.sync);
          // The leader engine's background status (no event: nothing failed just now).
          if (m.background) this.status.background = m.background;
          // A new leader: everything not acknowledged goes to it.
          for (const [cid, p] of this._pending) {
            if (p.sent) p.resent = true;
            this._send(cid, p);
          }
          if (handover) {
            this.status._emit("leader", { info: m.info });
            this._deliver([{ kind: "overflow" }]);
          }
          this._ready(m.info);
        }
        break;
      case "call":
        if (this.local && m.epoch === this.epoch) this._serve(m);
        break;
      case "reply": {
        if (m.to !== this.tab) break;
        const p = this._pending.get(m.cid);
        if (!p) break;
        this._pending.delete(m.cid);
        if (m.error) p.reject(typed(m.error));
        else p.resolve(m.result);
        break;
      }
      case "events":
        if (!this.local) this._deliver(m.events);
        break;
      case "sync":
        if (!this.local) this.status._setSync(m.state, m.detail);
        break;
      case "background":
        if (!this.local) this.status._setBackground(m.detail);
        break;
      case "bye":
        // Only our leader's goodbye holds calls back (another tab's, e.g. a leader that was
        // already replaced, must not stall them until a next announcement that never comes).
        if (!this.local && m.tab === this.leaderTab) {
          this.epoch = null; // hold calls until the next leader announces itself
          this.status._setSync("handover", this.status.syncDetail);
        }
        break;
      default:
        break;
    }
  }

  _send(cid, p) {
    try {
      this.channel.postMessage({ t: "call", tab: this.tab, epoch: this.epoch, cid, method: p.method, args: p.args, resent: !!p.resent });
    } catch (e) {
      this._pending.delete(cid);
      p.reject(unsendable(e));
      return;
    }
    p.sent = true;
  }

  _deliver(events) {
    for (const s of this._subs.values()) {
      for (const e of events) {
        if (e.kind !== "overflow" && s.collection != null && e.collection !== s.collection) continue;
        try { s.cb(e); } catch (err) { console.error("Ostracon subscriber failed", err); }
      }
    }
  }

  // ---- the engine connection -----------------------------------------------------------

  call(method, args) {
    if (this._closed) return Promise.reject(typed({ name: "ClosedError", names: ["ClosedError", "OstraconError"], message: "the database is closed" }));
    if (this.local && this.epoch) return this._execute(method, args, false);
    args = withIds(method, args);
    const cid = this._nextCall++;
    return new Promise((resolve, reject) => {
      const p = { method, args, resolve, reject, sent: false, resent: false };
      this._pending.set(cid, p);
      if (this.epoch) this._send(cid, p);
    });
  }

  async subscribe(collection, _buffer, cb) {
    const h = this._nextSub++;
    this._subs.set(h, { collection, cb });
    return h;
  }

  async unsubscribe(h) {
    this._subs.delete(h);
  }

  // Number of calls sent to another tab and not acknowledged yet.
  get unacknowledged() { return this._pending.size; }

  _bye() {
    if (this.local && this.channel) this.channel.postMessage({ t: "bye", tab: this.tab });
  }

  async close() {
    if (this._closed) return;
    this._bye();
    this._closed = true;
    if (this._onPageHide) removeEventListener("pagehide", this._onPageHide);
    if (this._onSync) this.status.removeEventListener("sync", this._onSync);
    if (this._onBackground) this.status.removeEventListener("background", this._onBackground);
    const err = typed({ name: "ClosedError", names: ["ClosedError", "OstraconError"], message: "the database is closed" });
    for (const p of this._pending.values()) p.reject(err);
    this._pending.clear();
    this._subs.clear();
    try {
      if (this.local) await this.local.close();
    } finally {
      if (this.channel) this.channel.close();
      if (this._release) this._release();
    }
  }
}

// A follower's create/createMany always carries ids, so it can be re-sent safely.
function withIds(method, args) {
  if (method === "create") {
    const [col, doc, id] = args;
    return [col, doc, id ?? newDocId()];
  }
  if (method === "createMany") {
    const [col, docs] = args;
    return [col, docs, Array.isArray(docs) ? docs.map(() => newDocId()) : null];
  }
  return args;
}

// The arguments of a call as run on the leader: a re-sent create resumes (an existing
// document with its id counts as created).
function resumeArgs(p) {
  if (!p.resent) return p.args;
  if (p.method === "create") return [...p.args.slice(0, 3), { resume: true }];
  if (p.method === "createMany") return [...p.args.slice(0, 3), { resume: true }];
  return p.args;
}
