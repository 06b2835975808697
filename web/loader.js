// The one loader of the browser runtime: Pyodide, the wheels and the bridge, from the
// directory this module sits in (dist/web). web/worker.js boots the engine with it, and so do
// the Node runners (e2e/node/boot.mjs), so every runtime loads exactly the same way.
//
//   const { pyodide, bridge, host, boot } = await loadRuntime({ progress, pyodideOptions, snapshots });
//
// Nothing is fetched from a CDN: indexURL, the lock file and the packages are all next to
// this file (written by wasm-build/build.py). After the ostracon wheel is loaded, the bridge
// (web/bridge.js) is handed to Python, which registers it under the module name it owns
// (ostracon.runtime.browser.bridge.BRIDGE_MODULE), and the worker's RPC host is imported from
// the wheel (ostracon.runtime.browser.host.HOST).
//
// Memory snapshot (docs/BROWSER.md, "Engine start"): with a snapshot store (the worker passes
// `cacheSnapshotStore()`), the first start on a device snapshots the interpreter with the engine
// imported (ostracon/runtime/browser/snapshot.py says what is in it) and keeps the image keyed
// by the Pyodide version and the sha256 of the lock file (which pins every wheel's sha256); later
// starts restore it instead of starting the interpreter and importing the engine. A snapshot that
// fails to restore is deleted and the start falls back to the ordinary path.

import * as bridge from "./bridge.js";
import { fetchWheel, installWheels, wheelOrder } from "./wheels.js";

const HERE = new URL(".", import.meta.url);
// Cache Storage bucket of the snapshot images (one per bundle location).
export const SNAPSHOT_CACHE = "ostracon-snapshot";
// Bump when what goes into a snapshot changes outside the wheel (this loader's steps).
const SNAPSHOT_FORMAT = 2;
// The snapshot module is loaded by file path under this name: importing it through the
// `ostracon` package would import the engine before its extension packages are deferred.
const SNAPSHOT_MODULE = "_ostracon_snapshot";
const SNAPSHOT_LOAD = `
import importlib.util, sys
if ${JSON.stringify(SNAPSHOT_MODULE)} not in sys.modules:
    _spec = importlib.util.find_spec("ostracon")
    _path = _spec.submodule_search_locations[0] + "/runtime/browser/snapshot.py"
    _mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(${JSON.stringify(SNAPSHOT_MODULE)}, None, origin=_path))
    _mod.__file__ = _path
    sys.modules[_mod.__name__] = _mod
    exec(compile(_spec.loader.get_data(_path), _path, "exec"), _mod.__dict__)
    del _spec, _path, _mod
`;

// Where Pyodide finds its files: a URL in a browser, a directory path under Node.
function indexLocation() {
  return HERE.protocol === "file:" ? decodeURIComponent(HERE.pathname) : HERE.href;
}

async function readFile(location, text) {
  if (HERE.protocol === "file:") {
    const fs = await import("node:fs/promises");
    return text ? fs.readFile(location, "utf8") : new Uint8Array(await fs.readFile(location));
  }
  const res = await fetch(location);
  if (!res.ok) throw Object.assign(new Error(`${location}: HTTP ${res.status}`), { name: "StorageUnavailableError" });
  return text ? res.text() : new Uint8Array(await res.arrayBuffer());
}

async function sha256Hex(data) {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const d = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

// A snapshot store keeps {bytes, sha256} under a key: get(key) → {bytes, sha256} | null (`bytes`
// a Uint8Array or a promise of one, so that a store can answer before it has read the image),
// put(key, bytes, sha256), delete(key). The loader checks the digest before a restore: a
// damaged image must never reach the interpreter (it would fail at some later call, not at
// the restore).
//
// On Cache Storage (null where there is none, e.g. Node 20). Keeps one image per bundle
// location: storing a new one drops the older ones of the same location.
export function cacheSnapshotStore(cacheName = SNAPSHOT_CACHE) {
  const caches = globalThis.caches;
  if (!caches || !HERE.protocol.startsWith("http")) return null;
  const prefix = new URL("__ostracon_snapshot__/", HERE).href;
  const url = (key) => prefix + key;
  return {
    async get(key) {
      const res = await (await caches.open(cacheName)).match(url(key));
      return res ? { bytes: res.arrayBuffer().then((b) => new Uint8Array(b)), sha256: res.headers.get("X-Content-SHA256") } : null;
    },
    async put(key, bytes, sha256) {
      const cache = await caches.open(cacheName);
      for (const req of await cache.keys()) if (req.url.startsWith(prefix) && req.url !== url(key)) await cache.delete(req);
      await cache.put(url(key), new Response(bytes, {
        headers: { "Content-Type": "application/octet-stream", "X-Content-SHA256": sha256 } }));
    },
    async delete(key) {
      await (await caches.open(cacheName)).delete(url(key));
    },
  };
}

// A snapshot store in memory (Node runners and tests).
export function memorySnapshotStore() {
  const m = new Map();
  return {
    async get(key) { return m.get(key) ?? null; },
    async put(key, bytes, sha256) { m.clear(); m.set(key, { bytes, sha256 }); },
    async delete(key) { m.delete(key); },
  };
}

// The stored image for `key`: null if there is none, else {bytes}: a promise of its bytes that
// rejects if they do not match the stored digest. Read and digested while Pyodide loads its scripts
// (loadPyodide awaits `_loadSnapshot` just before it instantiates the wasm).
async function storedImage(snapshots, key) {
  const got = await snapshots.get(key).catch(() => null);
  if (!got) return null;
  const checked = (async () => {
    const bytes = await got.bytes;
    if (bytes instanceof Uint8Array && got.sha256 && (await sha256Hex(bytes)) === got.sha256) return bytes;
    throw new Error("damaged image: its sha256 does not match");
  })();
  checked.catch(() => {});
  return { bytes: checked };
}

// Snapshot the interpreter with the engine imported (a fresh instance started with
// `_makeSnapshot`). Only the pure-Python wheels are installed for the imports (web/wheels.js;
// the extension packages stay deferred), and the package manager is not involved, so the
// image holds no reference to JS objects of this instance.
async function makeSnapshot(pyodide, wheels) {
  await installWheels(pyodide, wheels, { deferLibraries: true });
  pyodide.runPython(SNAPSHOT_LOAD);
  pyodide.pyimport(SNAPSHOT_MODULE).prepare();
  return pyodide.makeMemorySnapshot();
}

// progress(phase, detail) is called as each phase starts: "pyodide" (the Pyodide module and the
// lock file), "instantiate" (compile the wasm and start the interpreter, or restore the
// snapshot), "snapshot" (first start only: import the engine and take the snapshot),
// "packages" (install the wheels), "host" (import the engine, hand over the bridge).
// `boot` in the result: {snapshot: "restored" | "made" | "off" | "failed", reason: why it failed
// (or null), ms: {phase: duration}, stored: a promise of whether a new image reached the store}.
export async function loadRuntime({ progress = () => {}, packages = ["ostracon"], pyodideOptions = {}, snapshots = null } = {}) {
  const index = indexLocation();
  const ms = {};
  let phase = null;
  let mark = performance.now();
  const step = (name, detail) => {
    const now = performance.now();
    if (phase) ms[phase] = Math.round(now - mark);
    phase = name;
    mark = now;
    if (name) progress(name, detail);
  };
  step("pyodide", { url: HERE.href });
  const [{ loadPyodide, version }, lockText] = await Promise.all([
    import(new URL("pyodide.mjs", HERE).href), readFile(index + "pyodide-lock.json", true)]);
  const lock = JSON.parse(lockText);
  // The wheels are fetched and checked while the interpreter starts.
  const wheelsReady = Promise.all(wheelOrder(lock, packages).map((name) =>
    fetchWheel(lock, name, (file) => readFile(index + file, false))));
  wheelsReady.catch(() => {});
  const key = snapshots ? `${version}-${SNAPSHOT_FORMAT}-${await sha256Hex(lockText)}` : null;
  const image = key ? await storedImage(snapshots, key) : null;
  const base = { indexURL: index, lockFileContents: lockText, packageBaseUrl: index, ...pyodideOptions };
  // "failed": a stored image was damaged or would not restore; it is deleted, this start goes
  // the ordinary way and the next one makes a new image.
  let state = key ? "made" : "off";
  let pyodide = null;
  let stored = Promise.resolve(false);
  let reason = null;
  step("instantiate", { snapshot: image ? "restore" : state });
  if (image) {
    try {
      pyodide = await loadPyodide({ ...base, _loadSnapshot: image.bytes });
      state = "restored";
    } catch (e) {
      await snapshots.delete(key).catch(() => {});
      state = "failed";
      reason = String((e && e.message) || e);
    }
  }
  if (!pyodide) pyodide = await loadPyodide({ ...base, _makeSnapshot: state === "made" });
  if (state === "made") {
    step("snapshot", null);
    try {
      const img = await makeSnapshot(pyodide, await wheelsReady);
      // Digested and stored in the background: the engine need not wait for Cache Storage.
      stored = sha256Hex(img).then((digest) => snapshots.put(key, img, digest)).then(() => true, () => false);
    } catch (e) {
      state = "failed";
      reason = String((e && e.message) || e);
    }
  }
  step("packages", { packages, snapshot: state });
  await installWheels(pyodide, await wheelsReady);
  step("host", null);
  if (state === "restored") pyodide.pyimport(SNAPSHOT_MODULE).resume();
  pyodide.pyimport("ostracon.runtime.browser.bridge").install(bridge);
  const hostModule = pyodide.pyimport("ostracon.runtime.browser.host");
  hostModule.tune_collector(); // the collector's threshold for a write-heavy engine (host.py)
  const host = hostModule.HOST;
  step(null);
  return { pyodide, bridge, host, boot: { snapshot: state, reason, ms, stored } };
}
