// Installs the bundle's wheels into a Pyodide instance without Pyodide's package manager
// (web/loader.js uses it for every start: ordinary, snapshot-making and restored).
//
// Every wheel is fetched from the bundle and checked against the sha256 that
// pyodide-lock.json pins before any of its bytes reach the interpreter. Then:
// - a pure-Python wheel is written as ONE file (`WHEEL_DIR`/<file_name>) and imported from
//   there by Python's zipimport: nothing is unpacked, and a restored memory snapshot already
//   holds the wheel's directory (zipimport's cache), so putting the same bytes back at the same
//   path is the whole installation;
// - a wheel with an extension library (msgpack) is unpacked here, in JS, into site-packages, and
//   its libraries are loaded (`loadDynlib`): Python cannot import them from a zip, and a
//   snapshot cannot hold them (docs/BROWSER.md, "Engine start").
// The installed names are marked in `pyodide.loadedPackages`, so a later `loadPackage` of them
// (or of a package depending on them) does not install them twice.

// Where pure-Python wheels are kept in the interpreter's file system (on sys.path).
export const WHEEL_DIR = "/lib/wheels/";
// The channel Pyodide's package manager records for packages from the lock file.
const CHANNEL = "default channel";
// Zip records (APPNOTE.TXT 4.3): end of central directory, central and local file headers.
const EOCD_SIG = 0x06054b50, CENTRAL_SIG = 0x02014b50, LOCAL_SIG = 0x04034b50;
const EOCD_MIN = 22, EOCD_SEARCH = EOCD_MIN + 0xffff;

async function sha256Hex(bytes) {
  const d = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The wheels `names` need, dependencies first (from the lock's `depends`).
export function wheelOrder(lock, names) {
  const out = [];
  const seen = new Set();
  const visit = (name) => {
    if (seen.has(name)) return;
    seen.add(name);
    const entry = lock.packages[name];
    if (!entry) throw new Error(`${name} is not in pyodide-lock.json`);
    for (const dep of entry.depends ?? []) visit(dep);
    out.push(name);
  };
  names.forEach(visit);
  return out;
}

// Fetch `name`'s wheel with `read(file_name)` and check it against the lock.
// Resolves to {name, entry, bytes}; rejects if the digest differs.
export async function fetchWheel(lock, name, read) {
  const entry = lock.packages[name];
  const bytes = await read(entry.file_name);
  if ((await sha256Hex(bytes)) !== entry.sha256) throw new Error(`${entry.file_name} does not match pyodide-lock.json`);
  return { name, entry, bytes };
}

// The entries of a zip archive: [{name, method, compressedSize, size, dataOffset}].
// Throws on anything it does not read exactly (zip64, encryption, a name leaving the tree).
export function zipEntries(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - EOCD_MIN; i >= Math.max(0, bytes.length - EOCD_SEARCH); i--) {
    if (v.getUint32(i, true) === EOCD_SIG) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error("not a zip archive");
  const count = v.getUint16(eocd + 10, true);
  let p = v.getUint32(eocd + 16, true);
  const dec = new TextDecoder("utf-8", { fatal: true });
  const out = [];
  for (let n = 0; n < count; n++) {
    if (p + 46 > bytes.length || v.getUint32(p, true) !== CENTRAL_SIG) throw new Error("damaged zip directory");
    const flags = v.getUint16(p + 8, true), method = v.getUint16(p + 10, true);
    const compressedSize = v.getUint32(p + 20, true), size = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true), extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true), local = v.getUint32(p + 42, true);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    if (flags & 1 || (method !== 0 && method !== 8) || compressedSize === 0xffffffff || local === 0xffffffff) {
      throw new Error(`${name}: unsupported zip entry`);
    }
    if (name.startsWith("/") || name.split("/").some((s) => s === ".." || s === ".")) throw new Error(`${name}: unsafe path`);
    if (local + 30 > bytes.length || v.getUint32(local, true) !== LOCAL_SIG) throw new Error(`${name}: damaged zip entry`);
    const dataOffset = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (dataOffset + compressedSize > bytes.length) throw new Error(`${name}: truncated zip entry`);
    out.push({ name, method, compressedSize, size, dataOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

// The bytes of one entry of `zipEntries(bytes)`.
export async function zipRead(bytes, e) {
  const raw = bytes.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
  const data = e.method === 0 ? raw
    : new Uint8Array(await new Response(new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"))).arrayBuffer());
  if (data.length !== e.size) throw new Error(`${e.name}: ${data.length} bytes, the zip directory says ${e.size}`);
  return data;
}

const hasLibrary = (entries) => entries.some((e) => e.name.endsWith(".so"));

// Python for one install: zipped wheels on sys.path (after the script directory), and the
// finders of the directories written forget their listings (a snapshot may hold old ones).
// `spec` is JSON, which is also a Python literal; the code leaves no names behind.
const activateCode = (spec) => `
def _ostracon_activate(zips, dirs):
    import sys
    for p in reversed(zips):
        if p not in sys.path:
            sys.path.insert(1, p)
    for d in dirs:
        f = sys.path_importer_cache.get(d)
        if f is not None:
            f.invalidate_caches()
_ostracon_activate(*${spec})
del _ostracon_activate
`;

// Install the fetched wheels (`fetchWheel` results, dependencies first). With `deferLibraries`
// (while a snapshot is being made) a wheel with an extension library is skipped entirely and
// left for the next call, and nothing is marked installed. Returns the names installed.
export async function installWheels(pyodide, wheels, { deferLibraries = false } = {}) {
  const FS = pyodide.FS;
  const site = pyodide._api.sitePackages;
  const zips = [];
  const dirs = new Set();
  const libs = [];
  const done = [];
  FS.mkdirTree(WHEEL_DIR);
  for (const { name, entry, bytes } of wheels) {
    if (pyodide.loadedPackages[name]) continue;
    const entries = zipEntries(bytes);
    if (!hasLibrary(entries)) {
      FS.writeFile(WHEEL_DIR + entry.file_name, bytes, { canOwn: false });
      zips.push(WHEEL_DIR + entry.file_name);
    } else if (deferLibraries) {
      continue;
    } else {
      for (const e of entries) {
        if (e.name.endsWith("/")) continue;
        const path = `${site}/${e.name}`;
        const dir = path.slice(0, path.lastIndexOf("/"));
        FS.mkdirTree(dir);
        FS.writeFile(path, await zipRead(bytes, e));
        dirs.add(dir);
        if (e.name.endsWith(".so")) libs.push(path);
      }
      dirs.add(site);
    }
    done.push(name);
  }
  for (const lib of libs) await pyodide._api.loadDynlib(lib);
  pyodide.runPython(activateCode(JSON.stringify([zips, [...dirs]])));
  // Not while a snapshot is made: the package manager's record must be empty then (Pyodide
  // checks it), and the next call writes the same wheel to the same path again.
  if (!deferLibraries) for (const name of done) pyodide.loadedPackages[name] = CHANNEL;
  return done;
}
