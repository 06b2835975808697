// Ostracon Notes: the first code the page runs. It starts reading the remembered space's first
// screen from the read view (startRead), so that IndexedDB opens and reads in parallel with the
// rest of the page instead of after it; meanwhile the page builds the locale formats the list's
// rows need (format.js). boot.js takes the started read up (takeStartedRead) and paints it
// (firstpaint.js).
//
// It runs twice, as one code: the build (wasm-build/inline.py) inlines this module and its
// imports (../readview.js, format.js) into index.html as a classic script at the top of <head>,
// which runs while the page is parsed, before any module file has arrived; that copy starts the
// read and leaves it in a global slot (EARLY_READ_SLOT). This module file, imported by the
// page's modules later, adopts it there rather than reading twice. A page without the inline
// copy (the unbuilt source, or a page that loads this module itself) starts the read here.
//
// It holds what this device remembers at start (localStorage): the space, which decides the
// database the page opens, and each database's first screen (the ids of its first
// FIRST_SCREEN_ROWS notes as last shown live, see firstpaint.js).

import { peek } from "../readview.js";
import { prepareFormats } from "./format.js";

export const COLLECTION = "notes";
// The list's order when the page loads: the initial value of the sort menu (index.html).
export const DEFAULT_SORT = "updated";
// Notes remembered as the first screen: more than the tallest window shows (rows ≥ 56 px).
export const FIRST_SCREEN_ROWS = 40;

// The global through which the inline copy of this module hands its started read to the module
// file (see the top of this file); the module file clears it when it adopts the read.
export const EARLY_READ_SLOT = "__ostraconNotesEarlyRead";

const SPACE_KEY = "ostracon-notes/space";
const HINT_PREFIX = "ostracon-notes/first-screen/";

// The space descriptor this device remembers (members.js), or null.
export function loadSpace() {
  try {
    return JSON.parse(localStorage.getItem(SPACE_KEY) || "null");
  } catch (_) {
    return null;
  }
}

export function saveSpace(s) {
  if (s) localStorage.setItem(SPACE_KEY, JSON.stringify(s));
  else localStorage.removeItem(SPACE_KEY);
}

// A kept space whose copy on this device is locked by a passphrase that is not remembered.
export function needsUnlock(space) {
  return !!space && space.kind === "kept" && space.locked && !space.passphrase;
}

// A space given in the address (#invite=… or an earlier #space=…&passphrase=…), or null.
export function inviteFromLocation() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get("invite")) return { invite: h.get("invite") };
  if (h.get("space") && h.get("passphrase")) return { name: h.get("space"), passphrase: h.get("passphrase") };
  return null;
}

// What the page does at start: {join: descriptor|null} to show the join screen (prefilled),
// or {open: descriptor} to open the remembered space.
export function startupChoice() {
  const fromLink = inviteFromLocation();
  const saved = loadSpace();
  if (fromLink && (!saved || JSON.stringify(saved) !== JSON.stringify(fromLink))) return { join: fromLink };
  if (saved && !needsUnlock(saved)) return { open: saved };
  return { join: saved };
}

// The database a start choice opens at once, or null: a remembered space names its database
// (an earlier passphrase space's name is derived in app.js, so its first paint starts there).
export function databaseToOpen(choice) {
  return choice.open && typeof choice.open.db === "string" && choice.open.db ? choice.open.db : null;
}

// Remember the first screen of `list` (documents in the order shown under `sort`) for the
// database `name`; written only when it changed.
export function saveFirstScreen(name, sort, list) {
  const text = JSON.stringify({ sort, ids: list.slice(0, FIRST_SCREEN_ROWS).map((d) => d._id) });
  try {
    if (localStorage.getItem(HINT_PREFIX + name) !== text) localStorage.setItem(HINT_PREFIX + name, text);
  } catch (_) {
    // Storage full or refused: the next first paint reads the whole view instead.
  }
}

// Stop remembering the first screen of `name` (the app leaves that space on this device).
export function forgetFirstScreen(name) {
  try {
    localStorage.removeItem(HINT_PREFIX + name);
  } catch (_) {
    // Storage refused: the entry stays, harmless (ids only, read only for this database).
  }
}

// The remembered first screen for `sort`, or null (none, another sort, or malformed).
export function loadFirstScreen(name, sort) {
  try {
    const h = JSON.parse(localStorage.getItem(HINT_PREFIX + name) || "null");
    if (h && h.sort === sort && Array.isArray(h.ids) && h.ids.length <= FIRST_SCREEN_ROWS
        && h.ids.every((id) => typeof id === "string")) return h.ids;
  } catch (_) {
    // Malformed: as if there were none.
  }
  return null;
}

// Start reading the first screen of `collection` in the database `name` for the list sorted by
// `sort`: the remembered first screen by id, or (none remembered) the whole view. Nothing is
// drawn, so this module starts it at page load, before the modules that draw have loaded, and
// boot.js hands it to firstPaint (firstpaint.js) as `read`. Returns {name, collection, sort, hint,
// inline, startedAt, doneAt, result}: `result` resolves to peek's answer, `doneAt` is set then
// (performance.now() milliseconds, like startedAt); `inline`: started by the page's inline copy
// of this module (a classic script, the only kind document.currentScript names).
export function startRead(name, collection, sort) {
  const hint = loadFirstScreen(name, sort);
  const inline = typeof document !== "undefined" && !!document.currentScript;
  const read = { name, collection, sort, hint, inline, startedAt: performance.now(), doneAt: null };
  read.result = peek(name, collection, hint ? { ids: hint } : {}).then((r) => {
    read.doneAt = performance.now();
    return r;
  });
  return read;
}

let started = null;

// The read this module started at page load, if it is for the database `name`, `collection`
// and `sort`; handed out once (later calls, and other arguments, get null).
export function takeStartedRead(name, collection, sort) {
  const r = started;
  if (!r || r.name !== name || r.collection !== collection || r.sort !== sort) return null;
  started = null;
  return r;
}

// The read the inline copy started for the database `name` (taken out of the slot), or null.
function adoptInlineRead(name) {
  const r = globalThis[EARLY_READ_SLOT];
  if (r === undefined) return null;
  delete globalThis[EARLY_READ_SLOT];
  const usable = r && typeof r === "object" && r.result && typeof r.result.then === "function";
  return usable && r.name === name && r.collection === COLLECTION && r.sort === DEFAULT_SORT ? r : null;
}

const db = databaseToOpen(startupChoice());
if (db) {
  const adopted = adoptInlineRead(db);
  started = adopted || startRead(db, COLLECTION, DEFAULT_SORT);
  // The inline copy hands its read on to the module file.
  if (!adopted && started.inline) globalThis[EARLY_READ_SLOT] = started;
  // The first locale formats of a page cost tens of ms of this thread (up to hundreds on a busy
  // machine), and the paint needs them: built while IndexedDB opens the database in the browser.
  setTimeout(() => prepareFormats(DEFAULT_SORT), 0);
}
