// The one loader of the browser runtime: Pyodide, the wheels and the bridge, from the
// directory this module sits in (dist/web). web/worker.js boots the engine with it, and so do
// the Node runners (e2e/node/boot.mjs), so every runtime loads exactly the same way.
//
//   const { pyodide, bridge, host } = await loadRuntime({ progress, pyodideOptions });
//
// Nothing is fetched from a CDN: indexURL, the lock file and the packages are all next to
// this file (written by wasm-build/build.py). After the ostracon wheel is loaded, the bridge
// (web/bridge.js) is handed to Python, which registers it under the module name it owns
// (ostracon.runtime.browser.bridge.BRIDGE_MODULE), and the worker's RPC host is imported from
// the wheel (ostracon.runtime.browser.host.HOST).

import * as bridge from "./bridge.js";

const HERE = new URL(".", import.meta.url);

// Where Pyodide finds its files: a URL in a browser, a directory path under Node.
function indexLocation() {
  return HERE.protocol === "file:" ? decodeURIComponent(HERE.pathname) : HERE.href;
}

// progress(phase, detail) is called at each phase: "pyodide", "packages", "host".
export async function loadRuntime({ progress = () => {}, packages = ["ostracon"], pyodideOptions = {} } = {}) {
  const index = indexLocation();
  progress("pyodide", { url: HERE.href });
  const { loadPyodide } = await import(new URL("pyodide.mjs", HERE).href);
  const pyodide = await loadPyodide({
    indexURL: index,
    lockFileURL: index + "pyodide-lock.json",
    packageBaseUrl: index,
    ...pyodideOptions,
  });
  progress("packages", { packages });
  await pyodide.loadPackage(packages, { messageCallback: () => {} });
  progress("host", null);
  pyodide.pyimport("ostracon.runtime.browser.bridge").install(bridge);
  const host = pyodide.pyimport("ostracon.runtime.browser.host").HOST;
  return { pyodide, bridge, host };
}
