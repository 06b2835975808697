// The rows of the `records` object store (web/bridge.js writes and reads them; the layout is
// described in ostracon/runtime/browser/indexeddb.py).
//
// A row is either one record (a Uint8Array, key = its position: the layout of format 1) or a
// run of consecutive records written by one batch (`{first, ends, data}`, key = the last
// position: record first+i is data[ends[i-1] .. ends[i])). One row per batch is what makes
// the sink fast: IndexedDB's cost is per put (a structured clone and a round trip to the
// browser's storage process), not per byte.

function storageError(message) {
  const e = new Error(message);
  e.name = "StorageError";
  return e;
}

// A stored value as a Uint8Array (no copy).
export function u8(v) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw storageError(`stored value is not bytes: ${Object.prototype.toString.call(v)}`);
}

export function isRun(v) {
  return v !== null && typeof v === "object" && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer);
}

// Put records (consecutive `positions`, one `packed` buffer, end offsets `ends`) into the
// store `rs` as runs of at most `perRow` records.
export function putRuns(rs, positions, packed, ends, perRow) {
  for (let i = 1; i < positions.length; i++) {
    if (positions[i] !== positions[i - 1] + 1) throw storageError("a run of records must have consecutive positions");
  }
  for (let i = 0; i < positions.length; i += perRow) {
    const n = Math.min(perRow, positions.length - i);
    const base = i ? ends[i - 1] : 0;
    const runEnds = new Array(n);
    for (let j = 0; j < n; j++) runEnds[j] = ends[i + j] - base;
    // slice() copies: each row owns its bytes (a subarray would store the whole buffer).
    rs.put({ first: positions[i], ends: runEnds, data: packed.slice(base, ends[i + n - 1]) }, positions[i + n - 1]);
  }
}

// What is left of row `v` once the records up to `upTo` are dropped: the run of its newer
// records, or null when the row needs no change (not a run, or nothing in it <= upTo).
export function runAfter(v, upTo) {
  if (!isRun(v) || v.first > upTo) return null;
  const k = upTo - v.first + 1;
  const base = v.ends[k - 1];
  return { first: upTo + 1, ends: v.ends.slice(k).map((e) => e - base), data: v.data.slice(base) };
}

// Expand rows (keys and values as getAllKeys/getAll return them) into positions and one packed
// buffer with end offsets. A malformed run throws: a damaged row must never read as fewer
// records.
export function unpackRows(keys, values) {
  const parts = [];
  const positions = [];
  const ends = [];
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const key = keys[i];
    if (!isRun(v)) {
      const r = u8(v);
      parts.push(r);
      positions.push(key);
      total += r.length;
      ends.push(total);
      continue;
    }
    const data = v.data instanceof Uint8Array ? v.data : null;
    const runEnds = Array.isArray(v.ends) ? v.ends : null;
    if (!data || !runEnds || !Number.isSafeInteger(v.first) || v.first + runEnds.length - 1 !== key)
      throw storageError(`records row ${key}: malformed run of records`);
    let prev = 0;
    for (let j = 0; j < runEnds.length; j++) {
      const e = runEnds[j];
      if (!Number.isSafeInteger(e) || e < prev || e > data.length)
        throw storageError(`records row ${key}: record ${v.first + j} has a bad end offset`);
      positions.push(v.first + j);
      ends.push(total + e);
      prev = e;
    }
    if (prev !== data.length) throw storageError(`records row ${key}: trailing bytes after the last record`);
    parts.push(data);
    total += data.length;
  }
  const packed = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { packed.set(p, at); at += p.length; }
  return { positions, packed, ends };
}
