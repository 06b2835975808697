// The engine's Web Worker, started from inside the app's folder.
//
// Why this one-line wrapper exists: a dedicated worker is controlled by the service worker
// whose scope contains the *worker script's* URL. The app's service worker (sw.js) has scope
// /demo/, so the runtime's /worker.js would run uncontrolled and could not load Pyodide with
// the server gone. Started from here, the worker is controlled, and every file it fetches
// (../pyodide.asm.wasm, the wheels...) is answered from the precache when offline.
// worker.js resolves those files relative to its own URL, so nothing else changes.
import "../worker.js";
