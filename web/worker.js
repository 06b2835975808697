// The Ostracon engine in a dedicated Web Worker (module worker).
//
// Boots Pyodide from this worker's own origin (no CDN) through loader.js: the core files, the
// custom pyodide-lock.json and the wheels written by wasm-build/build.py sit next to this
// file. The Python side of the RPC is ostracon.runtime.browser.host (in the wheel); it opens
// the database on IndexedDB with WebCrypto and answers RPC messages from web/ostracon.js.
//
// Messages in:  {type: "open", id, options} (first), {type: "call", id, method, args}
// Messages out: {type: "progress", phase, detail, ms}, {type: "reply", id, result | error},
//               {type: "events", sub, events}, {type: "status", state, detail},
//               {type: "background", detail}
//
// Every call into Python goes through `callPromising`, so the Python adapters can block on
// IndexedDB/WebCrypto promises (JSPI). Calls are serialised: Python is never re-entered
// while it is suspended in such a wait; requests that arrive meanwhile are queued and run as
// one batch (one JSPI entry for many calls).

import * as bridge from "./bridge.js";
import { cacheSnapshotStore, loadRuntime } from "./loader.js";

// How often the sink's time trigger is checked when no writes arrive (the engine has no
// threads: something must call tick()). 1 s keeps the 5 s trigger within 20% of its target.
const TICK_MS = 1000;
// Most requests run in one Python entry; bounds the latency of the first request of a burst.
const MAX_BATCH = 500;

const t0 = performance.now();
let pyodide = null;
let host = null;
let runBatch = null;
let booting = null;
let testing = false;
const queue = [];
let draining = false;
let tickTimer = null;

// JS has one number type: `toPy` turns -0 into the Python int 0, a different block than the
// float -0.0 a native caller stores. Canonical rule (docs/MERGE.md): -0 is the float -0.0.
// Before conversion every -0 in a request becomes this marker, which runtime/browser/convert.py's
// from_js turns back into -0.0 (toPy leaves instances of classes as proxies).
class NegativeZero {}
NegativeZero.prototype.ostraconNegativeZero = true;
const NEGATIVE_ZERO = Object.freeze(new NegativeZero());

// It also bounds the nesting of a request's arguments at the converters' own limit
// (runtime/browser/convert.py MAX_DEPTH): a deeper value fails its own call here, before
// toPy, whose recursion would overflow the stack and fail the whole batch.
const MAX_DEPTH = 100;

function markNegativeZero(v, depth = 0) {
  if (typeof v === "number") return Object.is(v, -0) ? NEGATIVE_ZERO : v;
  if (v === null || typeof v !== "object" || ArrayBuffer.isView(v)) return v;
  if (depth > MAX_DEPTH) {
    throw Object.assign(new Error(`value nested deeper than ${MAX_DEPTH} levels`),
      { name: "ValidationError", names: ["ValidationError", "OstraconError"] });
  }
  if (Array.isArray(v)) return v.map((x) => markNegativeZero(x, depth + 1));
  if (v instanceof Map) {
    // toPy would make it a dict; the API takes plain objects only (docs/BROWSER.md).
    throw Object.assign(new Error("cannot store a JS Map: use a plain object"),
      { name: "ValidationError", names: ["ValidationError", "OstraconError"] });
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  // A Map, which toPy turns into a dict whatever its keys. A plain object becomes a dict only
  // when its `constructor` reads as Object's, so an own key "constructor" (a name like any
  // other) would leave it a proxy, and assigning an own key "__proto__" (JSON.parse makes
  // them) to a copy would set the copy's prototype and drop the key.
  return new Map(Object.entries(v).map(([k, x]) => [k, markNegativeZero(x, depth + 1)]));
}

function post(msg) {
  self.postMessage(msg);
}

function progress(phase, detail) {
  post({ type: "progress", phase, detail: detail ?? null, ms: Math.round(performance.now() - t0) });
}

function errorOf(e) {
  // A JS-side failure (boot, fetch): shaped like a Python error so the caller sees one format.
  const name = (e && e.name) || "Error";
  return { name, message: String((e && e.message) || e), names: (e && e.names) || [name] };
}

async function boot(options) {
  // The memory snapshot (loader.js) unless the page opted out with {snapshot: false}.
  const snapshots = options && options.snapshot === false ? null : cacheSnapshotStore();
  ({ pyodide, host } = await loadRuntime({ progress, snapshots }));
  host.progress = (phase, detail) => progress(phase, detail);
  host.on_sync = (st) => post({ type: "status", state: st.state, detail: st });
  host.on_background = (st) => post({ type: "background", detail: st });
  host.wake = () => setTimeout(() => {
    if (!queue.some((m) => m.method === "events")) {
      queue.push({ id: -1, method: "events", args: [] });
      drain();
    }
  }, 0);
  // Background work in the idle tick (the read view's rows, compaction) gives way to calls.
  host.calls_waiting = () => queue.some((m) => m.id !== -1);
  runBatch = host.run;
  testing = !!(options && options.testing);
}

// Run queued requests in batches, one Python entry per batch.
async function drain() {
  if (draining) return;
  draining = true;
  try {
    while (queue.length) {
      const batch = queue.splice(0, MAX_BATCH);
      const py = [];
      for (const m of batch) {
        if (m.method.startsWith("__test")) {
          // Test hooks are JS-level and run one at a time (see testCall).
          try {
            post({ type: "reply", id: m.id, result: await testCall(m.method, m.args) });
          } catch (e) {
            post({ type: "reply", id: m.id, error: pyErrorOf(e) });
          }
          continue;
        }
        try {
          py.push([m.id, m.method, markNegativeZero(m.args ?? [])]);
        } catch (e) {
          post({ type: "reply", id: m.id, error: pyErrorOf(e) });
        }
      }
      if (!py.length) continue;
      // A Python stack (the sync task) may be suspended in a blocking wait: let it finish.
      while (bridge.gateBusy()) await bridge.gateIdle();
      let out;
      try {
        const arg = pyodide.toPy(py, { depth: -1 });
        try {
          out = await runBatch.callPromising(arg);
        } finally {
          arg.destroy();
        }
      } catch (e) {
        // Python itself failed outside a request (should not happen): fail the whole batch.
        for (const [id] of py) post({ type: "reply", id, error: errorOf(e) });
        continue;
      }
      // Events first: when a write's promise resolves, its subscribers have seen its event.
      for (const ev of out.events) post({ type: "events", ...ev });
      for (const r of out.responses) post({ type: "reply", ...r });
    }
  } finally {
    draining = false;
  }
}

function pyErrorOf(e) {
  if (e && e.type) return { name: e.type, message: String(e.message), names: [e.type] };
  return errorOf(e);
}

// ---- test hooks: only when the page opened the database with {testing: true} --------------
// They install Python files (the contract suites, test vectors) into the worker's file system
// and call a function in them, so e2e tests run exactly the code the worker runs.
async function testCall(method, args) {
  if (!testing) throw Object.assign(new Error("test hooks are disabled"), { name: "ValidationError" });
  if (method === "__testInstall") {
    const [dir, files] = args;
    for (const [name, text] of Object.entries(files)) {
      const p = `${dir}/${name}`;
      pyodide.FS.mkdirTree(p.slice(0, p.lastIndexOf("/")));
      pyodide.FS.writeFile(p, text);
    }
    pyodide.runPython(`import sys, importlib\nif ${JSON.stringify(dir)} not in sys.path: sys.path.insert(0, ${JSON.stringify(dir)})\nimportlib.invalidate_caches()`);
    return true;
  }
  if (method === "__testCall") {
    const [module, fn, fargs] = args;
    while (bridge.gateBusy()) await bridge.gateIdle();
    const f = pyodide.pyimport(module)[fn];
    const pyArgs = (fargs ?? []).map((a) => pyodide.toPy(markNegativeZero(a), { depth: -1 }));
    try {
      const r = await f.callPromising(...pyArgs);
      return r && r.toJs ? r.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false }) : r;
    } finally {
      for (const a of pyArgs) if (a && a.destroy) a.destroy();
      f.destroy();
    }
  }
  throw Object.assign(new Error(`unknown test hook ${method}`), { name: "ValidationError" });
}

self.onmessage = async (ev) => {
  const msg = ev.data || {};
  if (msg.type === "open") {
    // IndexedDB reads the database (under its writer lock) while the interpreter starts; the
    // storage adapter takes the result (bridge.js idbPrefetch). An open that fails before it
    // reaches its storage lets it go again.
    const name = msg.options && msg.options.name;
    if (typeof name === "string" && name && !host) bridge.idbPrefetch(name);
    try {
      if (!booting) booting = boot(msg.options);
      await booting;
    } catch (e) {
      bridge.dropPrefetched();
      post({ type: "reply", id: msg.id, error: errorOf(e) });
      return;
    }
    queue.push({ id: msg.id, method: "open", args: [openOptions(msg.options)] });
    if (self.navigator && self.navigator.onLine === false) network(false);
    await drain();
    bridge.dropPrefetched();
    if (!tickTimer) tickTimer = setInterval(() => {
      if (!queue.length && !draining) {
        queue.push({ id: -1, method: "tick", args: [] });
        drain();
      }
    }, TICK_MS);
    return;
  }
  if (msg.type === "call") {
    if (!host) {
      post({ type: "reply", id: msg.id, error: { name: "ClosedError", message: "the database is not open", names: ["ClosedError", "OstraconError"] } });
      return;
    }
    queue.push({ id: msg.id, method: msg.method, args: msg.args });
    if (msg.method === "close" && tickTimer) {
      clearInterval(tickTimer);
      tickTimer = null;
    }
    drain();
  }
};

// The device's network as the browser sees it: offline drops the relay connection at once
// (no waiting for a heartbeat to fail) and online reconnects without waiting for the backoff.
function network(online) {
  if (!host) return;
  queue.push({ id: -1, method: "network", args: [online] });
  drain();
}
self.addEventListener("online", () => network(true));
self.addEventListener("offline", () => network(false));

// Options the Python side understands (the rest are JS-side: onProgress, workerURL...).
function openOptions(o) {
  o = o || {};
  const out = { name: o.name };
  if (o.space) out.space = o.space;
  if (o.relay) out.relay = o.relay;
  if (o.sync) out.sync = o.sync;
  if (o.algorithm) out.algorithm = o.algorithm;
  if (o.sinkBatchOps != null) out.sink_batch_ops = o.sinkBatchOps;
  if (o.sinkIntervalMs != null) out.sink_interval_ms = o.sinkIntervalMs;
  return out;
}
