// The automerge-paper trace in Pyodide under Node (e2e/bench_text_web.py); one JSON line.
//   node --experimental-wasm-stack-switching e2e/node/bench_text.mjs [--dist dist/web]
import fs from "node:fs";
import path from "node:path";
import { ROOT, bootPyodide, ensureJspi } from "./boot.mjs";

ensureJspi();
const i = process.argv.indexOf("--dist");
const dist = path.resolve(ROOT, i >= 0 ? process.argv[i + 1] : "dist/web");
const { pyodide } = await bootPyodide(dist);
const dir = "/home/pyodide/bench_text";
pyodide.FS.mkdirTree(dir);
pyodide.FS.writeFile(`${dir}/bench_text.py`, fs.readFileSync(path.join(ROOT, "bench", "bench_text.py"), "utf8"));
pyodide.FS.writeFile(`${dir}/automerge-paper.json.gz`,
  fs.readFileSync(path.join(ROOT, "tests", "data", "editing-traces", "automerge-paper.json.gz")));
pyodide.runPython(`import sys; sys.path.insert(0, '${dir}')`);
const out = await pyodide.pyimport("bench_text").ostracon_json.callPromising(`${dir}/automerge-paper.json.gz`);
console.log(out);
process.exit(0);
