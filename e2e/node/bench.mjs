// W1 in Pyodide under Node (memory storage, Node's WebCrypto); prints one JSON line.
//   node --experimental-wasm-stack-switching e2e/node/bench.mjs [--dist dist/web]
import fs from "node:fs";
import path from "node:path";
import { ROOT, bootPyodide, ensureJspi } from "./boot.mjs";

ensureJspi();
const i = process.argv.indexOf("--dist");
const dist = path.resolve(ROOT, i >= 0 ? process.argv[i + 1] : "dist/web");
const { pyodide, timings } = await bootPyodide(dist);
pyodide.FS.mkdirTree("/home/pyodide/bench");
pyodide.FS.writeFile("/home/pyodide/bench/bench_w1.py", fs.readFileSync(path.join(ROOT, "e2e", "bench_w1.py"), "utf8"));
pyodide.runPython("import sys; sys.path.insert(0, '/home/pyodide/bench')");
const w1 = JSON.parse(await pyodide.pyimport("bench_w1").w1_json.callPromising("memory"));
console.log(JSON.stringify({ boot: timings, w1 }));
process.exit(0);
