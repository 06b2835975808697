// Ostracon Notes: the remembered first screen, drawn while the page is parsed.
//
// When the app shows live data it remembers the first screen's rows as they read (the text of
// each, remembered.js saveFirstScreen). The build inlines this module and its imports into
// index.html as a classic script right after the note list's elements (wasm-build/inline.py;
// allowed by its CSP hash like early.js), so on a returning visit the list is drawn from those
// rows synchronously, before the parser reaches the page's end: no IndexedDB, no locale
// formats, no module file. Then the read view's first screen (boot.js, firstpaint.js) replaces
// it, and live data replaces that, in the same order for unchanged data; a stale or tampered
// remembered screen is thus corrected within the same page load. The list stays inert until
// the engine is ready, as for the read view's paint.
//
// Nothing is drawn unless the page opens the remembered space at once, its rows are
// remembered and sound (remembered.js loadRememberedRows: never for a locked space), the
// list shows the default view (sort, filter, no search) and nothing has drawn the list yet
// (unbuilt, this runs as an async module, possibly after the read view's paint). What was
// drawn is left in a global slot (REMEMBERED_SLOT) that boot.js moves into the page's event
// timeline: {at, startedAt, count, ids} (performance.now() milliseconds).

import { databaseToOpen, loadRememberedRows, startupChoice } from "./remembered.js";
import { rowElement } from "./noterow.js";

export const REMEMBERED_SLOT = "__ostraconNotesRemembered";

// Draw the remembered first screen into the page's list; returns the slot's record, or null
// when nothing was drawn.
export function paintRemembered() {
  const startedAt = performance.now();
  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const list = $("notes");
  const sort = $("sort");
  const filter = $("filter");
  const search = $("search");
  if (!app || !list || !sort || !filter || !search || !app.hidden || list.firstChild) return null;
  if (filter.value !== "all" || search.value.trim()) return null;
  const db = databaseToOpen(startupChoice());
  const rows = db ? loadRememberedRows(db, sort.value) : null;
  if (!rows) return null;
  const today = new Date().toDateString();
  const frag = document.createDocumentFragment();
  for (const r of rows) frag.append(rowElement(r, today));
  list.append(frag);
  const empty = $("empty");
  if (empty) empty.hidden = true;
  app.inert = true;
  app.hidden = false;
  const painted = { at: performance.now(), startedAt, count: rows.length, ids: rows.map((r) => r.id) };
  globalThis[REMEMBERED_SLOT] = painted;
  return painted;
}

try {
  paintRemembered();
} catch (_) {
  // Storage refused or a page without the list: the read view paints as without it.
}
