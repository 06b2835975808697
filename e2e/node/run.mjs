// `make test-node`: the browser bundle (dist/web) under Node 20, checked against native.
//
//   node --experimental-wasm-stack-switching e2e/node/run.mjs [--dist dist/web]
//        [--python .venv/bin/python] [--checks a,b] [--seeds N] [--no-snapshot]
//
// 1. runs e2e/runtime_checks.py natively (the venv's CPython + cryptography + memory storage);
// 2. boots Pyodide from dist/web exactly like the worker (same lock file, wheels and bridge),
//    with fake-indexeddb and Node's WebCrypto, installs the contract suites, vectors and the
//    simulator into its file system and runs the same checks there (IndexedDB storage,
//    WebCrypto backend);
//    The checks run in a runtime restored from a memory snapshot (made by a first start, as
//    on a browser's second visit); --no-snapshot runs them in an ordinarily started one;
//    Before that, web/wheels.js (how the loader installs the wheels) is checked on the bundle's
//    wheels and on damaged ones (e2e/node/wheels_check.mjs);
// 3. fails unless every check passes in Pyodide and every value (CIDs, signatures, frames,
//    state hashes) is identical in both runtimes.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT, bootPyodide, ensureJspi } from "./boot.mjs";
import { checkWheels } from "./wheels_check.mjs";

ensureJspi();

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const dist = path.resolve(ROOT, arg("--dist", "dist/web"));
const python = path.resolve(ROOT, arg("--python", ".venv/bin/python"));
const allChecks = arg("--checks", "");
// transport_contract needs a relay and runs separately; the rest go through run_checks.
const wantTransport = !allChecks || allChecks.split(",").includes("transport_contract");
const checks = allChecks.split(",").filter((c) => c && c !== "transport_contract").join(",");
const onlyTransport = allChecks && !checks;
const seeds = Number(arg("--seeds", "12"));
const snapshot = !process.argv.includes("--no-snapshot");
const TESTS_DIR = "/home/pyodide/ostracon_tests";
// Values that must be identical across runtimes (the others only have to pass).
const COMPARED = ["crypto_vectors", "sim_hashes", "core_vectors", "graphql_answers", "text_policy",
  "text_script", "snapshot_vectors"];

// Files the checks need inside Pyodide, relative to the repo root → path under TESTS_DIR.
function testFiles() {
  const files = {};
  const add = (rel, as) => {
    const p = path.join(ROOT, rel);
    if (fs.existsSync(p)) files[as] = fs.readFileSync(p, "utf8");
  };
  for (const f of fs.readdirSync(path.join(ROOT, "tests"))) {
    if (f.endsWith(".py") && !f.startsWith("test_") && f !== "conftest.py") add(`tests/${f}`, f);
  }
  const vdir = path.join(ROOT, "tests", "vectors");
  if (fs.existsSync(vdir)) {
    for (const f of fs.readdirSync(vdir)) {
      if (f.endsWith(".json") || f.endsWith(".py")) add(`tests/vectors/${f}`, `vectors/${f}`);
    }
  }
  add("e2e/runtime_checks.py", "runtime_checks.py");
  add("e2e/runtime_checks_storage.py", "runtime_checks_storage.py");
  return files;
}

// A native relay (`ostracon relay`, in-memory mailbox) on a free loopback port.
async function startRelay() {
  const bin = path.join(path.dirname(python), "ostracon");
  const child = spawn(bin, ["relay", "--host", "127.0.0.1", "--port", "0", "--mailbox", "memory", "--log-level", "warning"],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start: ${out}`)), 30000);
    const onData = (d) => {
      out += d;
      const m = /rooms at (ws:\/\/[0-9.:]+)\//.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`relay exited with ${code}: ${out}`)));
  });
  // Also on a crash of the runtime (an uncaught error ends the process before `finally`).
  process.on("exit", () => child.kill("SIGTERM"));
  return { url, stop: () => child.kill("SIGTERM") };
}

function summarize(res) {
  return Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.ok]));
}

const wheels = await checkWheels(dist);
console.log(`wheels.js: ${wheels.entries} entries of ${wheels.wheels} wheels read back; damaged input refused`);

const t0 = performance.now();
const native = onlyTransport ? { status: 0, stdout: "{}" } : spawnSync(python, [path.join(ROOT, "e2e", "runtime_checks.py"), "native", "--seeds", String(seeds),
  ...(checks ? ["--checks", checks] : [])], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
if (native.status !== 0) {
  console.error(native.stderr);
  console.error("native run of e2e/runtime_checks.py failed");
  process.exit(1);
}
const nativeRes = JSON.parse(native.stdout);
const tNative = performance.now() - t0;

const { pyodide, timings } = await bootPyodide(dist, { snapshot });
console.log(`pyodide under node (${timings.snapshot}): boot ${timings.pyodideMs.toFixed(0)} ms, wheels ${timings.packagesMs.toFixed(0)} ms; phases ${JSON.stringify(timings.phases)}`);
// Nothing may be frozen out of the cyclic collector: a frozen engine crashed the collector
// under JSPI (ostracon/runtime/browser/snapshot.py, "Why the collector is not frozen").
const frozen = pyodide.runPython("import gc\ngc.get_freeze_count()");
if (frozen !== 0) {
  console.error(`${frozen} objects are frozen out of the collector in the ${timings.snapshot} instance`);
  process.exit(1);
}
// The loader tunes the collector for a write-heavy engine (host.py COLLECTOR_THRESHOLD).
const tuned = pyodide.runPython("import gc\nfrom ostracon.runtime.browser import host\ngc.get_threshold()[0] == host.COLLECTOR_THRESHOLD");
if (tuned !== true) {
  console.error(`the collector's threshold is not host.COLLECTOR_THRESHOLD in the ${timings.snapshot} instance`);
  process.exit(1);
}
// The checks' files on the instance's file system and sys.path.
for (const [rel, text] of Object.entries(testFiles())) {
  const p = `${TESTS_DIR}/${rel}`;
  pyodide.FS.mkdirTree(p.slice(0, p.lastIndexOf("/")));
  pyodide.FS.writeFile(p, text);
}
pyodide.runPython(`import sys\nsys.path[:0] = [${JSON.stringify(TESTS_DIR)}]`);
const run = pyodide.pyimport("runtime_checks").run_checks_json;
const t1 = performance.now();
let pyRes;
try {
  pyRes = onlyTransport ? {} : JSON.parse(await run.callPromisingKwargs({
    names: checks ? checks : "", tests_dir: TESTS_DIR, seeds,
  }));
} catch (e) {
  console.error(String(e.message || e).slice(-4000));
  process.exit(1);
}
const tPy = performance.now() - t1;

// The transport contract under Pyodide: the browser WebSocket transport (runtime/browser/
// transport.py over `ws`) against a real relay, and the BroadcastChannel transport
// (runtime/browser/broadcast.py on Node's global BroadcastChannel).
// Like the other checks it runs in the restored instance: its asyncio tasks suspend in
// WebCrypto calls (JSPI) while others run, the load under which a frozen collector crashed
// (ostracon/runtime/browser/snapshot.py, "Why the collector is not frozen").
if (wantTransport) {
  const relay = await startRelay();
  try {
    const tc = pyodide.pyimport("runtime_checks").transport_contract_json;
    pyRes.transport_contract = JSON.parse(await tc(relay.url, TESTS_DIR));
    nativeRes.transport_contract = { ok: true };  // natively: tests/test_transport_contract.py
  } finally {
    relay.stop();
  }
}

// P-256 stores cross runtimes: each side verifies the store the other made (ECDSA is
// randomised, so this is compared by verification, not by bytes).
if (pyRes.p256_store?.ok && nativeRes.p256_store?.ok) {
  const toNative = spawnSync(python, [path.join(ROOT, "e2e", "runtime_checks.py"), "verify-store"], {
    cwd: ROOT, encoding: "utf8", input: JSON.stringify(pyRes.p256_store.value.made), maxBuffer: 16 << 20,
  });
  const nativeVerdict = toNative.status === 0 ? JSON.parse(toNative.stdout) : { ok: false, error: toNative.stderr };
  const verify = pyodide.pyimport("runtime_checks").verify_store_json;
  const pyVerdict = JSON.parse(await verify.callPromising(JSON.stringify(nativeRes.p256_store.value.made), TESTS_DIR));
  pyRes.p256_cross = pyVerdict;        // the native store, verified in pyodide
  nativeRes.p256_cross = nativeVerdict;  // the pyodide store, verified natively
}

let failed = 0;
for (const [name, r] of Object.entries(pyRes)) {
  const n = nativeRes[name] || {};
  let status;
  if (r.ok === null && n.ok === null) {
    status = `NOT RUN: input missing in both runtimes (${r.error})`;
  } else if (r.ok !== true) {
    status = `FAIL in pyodide\n${r.error}`;
    failed++;
  } else if (n.ok !== true) {
    status = `FAIL natively\n${n.error}`;
    failed++;
  } else if (COMPARED.includes(name) && JSON.stringify(r.value) !== JSON.stringify(n.value)) {
    status = "FAIL: values differ between native and pyodide";
    console.log(JSON.stringify({ native: n.value, pyodide: r.value }, null, 1).slice(0, 4000));
    failed++;
  } else {
    status = COMPARED.includes(name) ? "ok (identical to native)" : "ok";
    if (Array.isArray(r.value)) status += ` (${r.value.length} passed)`;
  }
  console.log(`${name.padEnd(18)} ${String(r.ms).padStart(8)} ms  ${status}`);
}
console.log(`native ${tNative.toFixed(0)} ms, pyodide checks ${tPy.toFixed(0)} ms; summary ${JSON.stringify(summarize(pyRes))}`);
if (failed) {
  console.error(`${failed} check(s) failed`);
  process.exit(1);
}
console.log("test-node: all checks passed");
process.exit(0);
