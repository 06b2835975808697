// Checks of web/wheels.js (the loader's wheel installation) against the bundle's own wheels,
// run by e2e/node/run.mjs before the runtime checks:
// - every entry of every wheel reads back with the size its zip directory gives;
// - a truncated archive, a name leaving the tree and a wheel that does not match the lock are
//   refused with an error (never installed);
// - the install order puts dependencies first and refuses a name the lock does not have.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function expect(cond, what) {
  if (!cond) throw new Error(`wheels.js: ${what}`);
}

async function rejects(p, pattern, what) {
  try {
    await p;
  } catch (e) {
    expect(pattern.test(String(e.message || e)), `${what}: unexpected error ${e.message || e}`);
    return;
  }
  throw new Error(`wheels.js: ${what}: accepted`);
}

// Returns {ok: true, wheels, entries} or throws.
export async function checkWheels(dist) {
  const w = await import(pathToFileURL(path.join(dist, "wheels.js")).href);
  const lock = JSON.parse(fs.readFileSync(path.join(dist, "pyodide-lock.json"), "utf8"));
  const read = async (file) => new Uint8Array(fs.readFileSync(path.join(dist, file)));
  let entries = 0;
  for (const name of Object.keys(lock.packages)) {
    const { bytes } = await w.fetchWheel(lock, name, read);
    for (const e of w.zipEntries(bytes)) {
      const data = await w.zipRead(bytes, e);
      expect(data.length === e.size, `${name}/${e.name}: ${data.length} bytes, expected ${e.size}`);
      entries++;
    }
  }
  const order = w.wheelOrder(lock, ["ostracon"]);
  expect(order.indexOf("msgpack") >= 0 && order.indexOf("msgpack") < order.indexOf("ostracon"),
    `install order ${order}`);
  expect(!order.includes("graphql-core"), "graphql-core is loaded on demand, not at start");
  let unknown = null;
  try {
    w.wheelOrder(lock, ["no-such-package"]);
  } catch (e) {
    unknown = e;
  }
  expect(unknown && /not in pyodide-lock.json/.test(unknown.message), "an unknown package is refused");

  const { bytes } = await w.fetchWheel(lock, "msgpack", read);
  // A wheel other than the one the lock pins.
  const other = bytes.slice();
  other[other.length >> 1] ^= 1;
  await rejects(w.fetchWheel(lock, "msgpack", async () => other), /does not match pyodide-lock.json/, "a changed wheel");
  // Cut off before its directory.
  let err = null;
  try {
    w.zipEntries(bytes.subarray(0, bytes.length >> 1));
  } catch (e) {
    err = e;
  }
  expect(err !== null, "a truncated archive is refused");
  // A name that leaves the tree: the first entry's name in the central directory made "../…".
  const evil = bytes.slice();
  const first = w.zipEntries(bytes)[0];
  const at = findName(evil, first.name);
  evil.set(new TextEncoder().encode("../"), at);
  err = null;
  try {
    w.zipEntries(evil);
  } catch (e) {
    err = e;
  }
  expect(err && /unsafe path/.test(err.message), `a path leaving the tree: ${err && err.message}`);
  return { ok: true, wheels: Object.keys(lock.packages).length, entries };
}

// Offset of `name` in the central directory (its last occurrence: the local header comes first).
function findName(bytes, name) {
  const needle = new TextEncoder().encode(name);
  for (let i = bytes.length - needle.length; i >= 0; i--) {
    let j = 0;
    while (j < needle.length && bytes[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  throw new Error(`${name} not found`);
}
