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

// Load Pyodide from `dist` with the bundle's lock file, load the ostracon wheel, register the
// bridge. Returns {pyodide, bridge, timings}.
export async function bootPyodide(dist = path.join(ROOT, "dist", "web"), { packages = ["ostracon"] } = {}) {
  const t0 = performance.now();
  await installBrowserGlobals();
  const dir = dist.endsWith(path.sep) ? dist : dist + path.sep;
  const { loadPyodide } = await import(pathToFileURL(path.join(dir, "pyodide.mjs")).href);
  const pyodide = await loadPyodide({
    indexURL: dir,
    lockFileURL: path.join(dir, "pyodide-lock.json"),
    packageBaseUrl: dir,
    stdout: (s) => console.log(s),
    stderr: (s) => console.error(s),
  });
  const t1 = performance.now();
  await pyodide.loadPackage(packages, { messageCallback: () => {} });
  const t2 = performance.now();
  const bridge = await import(pathToFileURL(path.join(dir, "bridge.js")).href);
  pyodide.registerJsModule("ostracon_bridge", bridge);
  return { pyodide, bridge, timings: { pyodideMs: t1 - t0, packagesMs: t2 - t1, totalMs: t2 - t0 } };
}
