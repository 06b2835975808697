// Boot the browser bundle (dist/web) under Node 20, the way web/worker.js boots it in a
// browser: same Pyodide core, same custom lock file, same wheels, same bridge module.
//
// Node 20 lacks IndexedDB and WebSocket: fake-indexeddb and ws fill them in. Blocking calls
// from Python into JS promises (run_sync) need JSPI, which Node 20 only has behind
// --experimental-wasm-stack-switching; `ensureJspi()` re-executes the script with that flag.

import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const JSPI_FLAG = "--experimental-wasm-stack-switching";

// Re-run this process with the JSPI flag if it is missing. Returns only in the child.
export function ensureJspi() {
  if (process.execArgv.includes(JSPI_FLAG)) return;
  const r = spawnSync(process.execPath, [JSPI_FLAG, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
  });
  process.exit(r.status ?? 1);
}

// Install the browser globals the bridge expects.
export async function installBrowserGlobals() {
  await import("fake-indexeddb/auto");
  if (!globalThis.WebSocket) {
    const { WebSocket } = await import("ws");
    globalThis.WebSocket = WebSocket;
  }
}

// Load the runtime from `dist` with the bundle's own loader (web/loader.js): the same lock
// file, wheels and bridge as the worker. With `snapshot: true` the runtime is started twice
// with an in-memory snapshot store, the way a browser starts it on a second visit: the first
// start makes the memory snapshot, the returned runtime is the one restored from it.
// Returns {pyodide, bridge, host, boot, timings}.
export async function bootPyodide(dist = path.join(ROOT, "dist", "web"), { packages = ["ostracon"], snapshot = false } = {}) {
  await installBrowserGlobals();
  const loader = await import(pathToFileURL(path.join(dist, "loader.js")).href);
  const snapshots = snapshot ? loader.memorySnapshotStore() : null;
  const pyodideOptions = { stdout: (s) => console.log(s), stderr: (s) => console.error(s) };
  if (snapshot) {
    const made = await loader.loadRuntime({ packages, pyodideOptions, snapshots });
    if (made.boot.snapshot !== "made" || !(await made.boot.stored)) throw new Error(`no snapshot was made: ${JSON.stringify(made.boot)}`);
  }
  const t0 = performance.now();
  let t1 = t0;
  const rt = await loader.loadRuntime({
    packages,
    snapshots,
    progress: (phase) => { if (phase === "packages") t1 = performance.now(); },
    pyodideOptions,
  });
  if (snapshot && rt.boot.snapshot !== "restored") throw new Error(`the snapshot was not restored: ${JSON.stringify(rt.boot)}`);
  const t2 = performance.now();
  return { ...rt, timings: { pyodideMs: t1 - t0, packagesMs: t2 - t1, totalMs: t2 - t0, phases: rt.boot.ms, snapshot: rt.boot.snapshot } };
}
