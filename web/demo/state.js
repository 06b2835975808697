// Ostracon Notes: the page state every module of the app shares, and two DOM shortcuts.
//
// `window.__notes` is the test and debugging handle (read-only use: the e2e tests wait on
// its fields); it is created here, before any module writes to it.

export const $ = (id) => document.getElementById(id);

export function show(id, on = true) { $(id).hidden = !on; }

export { COLLECTION, DEFAULT_SORT } from "./early.js";
// Page size when loading every note from the engine (scan is paged by the engine).
export const SCAN_PAGE = 500;

export const state = {
  db: null,
  notes: new Map(),
  live: false, // the list shows the engine's data (not the read view's)
  deleted: new Map(), // deleted notes (their history is kept), loaded for the "Deleted" filter
  current: null, // {id, draft, dirty: Set, timer, saving: Promise, lastSave}
  sync: { state: "opening" },
  lastSynced: null,
  space: null,
  history: null, // {id, commits, selected}
};

window.__notes = { state, ready: false, swReady: false, events: 0, timeline: [] };

