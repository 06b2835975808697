// Ostracon Notes: the first code the page runs. It starts reading the remembered space's first
// screen from the read view (startRead), so that IndexedDB opens and reads in parallel with the
// rest of the page instead of after it; meanwhile the page builds the locale formats the list's
// rows need (format.js). boot.js takes the started read up (takeStartedRead) and paints it
// (firstpaint.js).
//
// It runs twice, as one code: the build (wasm-build/inline.py) inlines this module and its
// imports (../readview.js, format.js, remembered.js) into index.html as a classic script at the
// top of <head>, which runs while the page is parsed, before any module file has arrived; that
// copy starts the read and leaves it in a global slot (EARLY_READ_SLOT). This module file,
// imported by the page's modules later, adopts it there rather than reading twice. A page
// without the inline copy (the unbuilt source, or a page that loads this module itself)
// starts the read here.
//
// What this device remembers at start (the space, each database's first screen) is kept by
// remembered.js; this module re-exports it for the app's modules.

import { peek } from "../readview.js";
import { prepareFormats } from "./format.js";
import { COLLECTION, DEFAULT_SORT, databaseToOpen, loadFirstScreen, loadRememberedRows, startupChoice }
  from "./remembered.js";

export { COLLECTION, DEFAULT_SORT, FIRST_SCREEN_ROWS, databaseToOpen, forgetFirstScreen, inviteFromLocation, loadSpace,
  needsUnlock, saveFirstScreen, saveSpace, startupChoice } from "./remembered.js";

// The global through which the inline copy of this module hands its started read to the module
// file (see the top of this file); the module file clears it when it adopts the read.
export const EARLY_READ_SLOT = "__ostraconNotesEarlyRead";

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

// Longest wait for an idle moment after the remembered first screen's frame before
// afterFirstScreen's work runs anyway (a page that starts its engine is rarely idle).
export const AFTER_FIRST_SCREEN_IDLE_MS = 200;

// Run `fn` soon: if the page draws the remembered first screen of the database `name`
// (firstscreen.js), once the page is idle after the next frame (within
// AFTER_FIRST_SCREEN_IDLE_MS), so that the frame is not held back; else in the next task.
export function afterFirstScreen(name, fn) {
  if (!loadRememberedRows(name, DEFAULT_SORT)) setTimeout(fn, 0);
  else if (typeof requestIdleCallback !== "function") requestAnimationFrame(() => setTimeout(fn, 0));
  else requestAnimationFrame(() => requestIdleCallback(() => fn(), { timeout: AFTER_FIRST_SCREEN_IDLE_MS }));
}

const db = databaseToOpen(startupChoice());
if (db) {
  const adopted = adoptInlineRead(db);
  started = adopted || startRead(db, COLLECTION, DEFAULT_SORT);
  // The inline copy hands its read on to the module file.
  if (!adopted && started.inline) globalThis[EARLY_READ_SLOT] = started;
  // The first locale formats of a page cost tens of ms of this thread (up to hundreds on a busy
  // machine), and the read view's paint needs them: built while IndexedDB opens the database in
  // the browser. When the page draws remembered rows (firstscreen.js), which need none, only
  // after their frame: a task queued now would run first and hold that frame back.
  afterFirstScreen(db, () => prepareFormats(DEFAULT_SORT));
}
