// Ostracon Notes: what this device remembers at start (localStorage) — the space, which
// decides the database the page opens, and each database's first screen as last shown live.
// No imports, no DOM and nothing run at load: both inline scripts of the page (early.js in
// <head>, firstscreen.js after the list) use it (wasm-build/inline.py bundles it into each).
//
// A first screen is {sort, ids, rows?}: `ids` are the first FIRST_SCREEN_ROWS notes under
// `sort` (firstpaint.js reads exactly those from the read view), `rows` the text each of
// those rows showed (format.js displayRow), which firstscreen.js draws at once on the next
// visit, before IndexedDB or any module. Rows are plaintext of the notes, like the read view
// in IndexedDB; they are not remembered for a space whose copy is locked by a passphrase.
// Everything read back is checked as hostile input (loadFirstScreen, loadRememberedRows):
// anything malformed, oversized or of the wrong type is ignored, and the page paints from
// the read view as without it.

export const COLLECTION = "notes";
// The list's order when the page loads: the initial value of the sort menu (index.html).
export const DEFAULT_SORT = "updated";
// Notes remembered as the first screen: more than the tallest window shows (rows ≥ 56 px).
export const FIRST_SCREEN_ROWS = 40;
// Characters of a row's title and snippet that are remembered and shown: each is one line
// cut with an ellipsis, and the widest list pane shows fewer characters than these.
export const ROW_TITLE_CHARS = 200;
export const ROW_SNIPPET_CHARS = 140;
// Characters of a row's info line (done, tags), which wraps: a few lines' worth.
export const ROW_INFO_CHARS = 200;
// Characters of a row's day (Date.toDateString) and formatted time or date: a locale's
// longest date-and-time words are well under it.
export const ROW_WHEN_CHARS = 64;
// Longest remembered first screen (JSON characters). FIRST_SCREEN_ROWS rows at the limits
// above take about 30,000; a longer entry (ids from a peer that are very long, text that JSON
// escapes) is remembered without rows. Read back, a longer entry is not parsed at all, so a
// tampered one costs the page nothing.
export const MAX_FIRST_SCREEN_CHARS = 65536;

const SPACE_KEY = "ostracon-notes/space";
const HINT_PREFIX = "ostracon-notes/first-screen/";
// The fields of a remembered row and their limits; `pinned` and `done` are booleans.
const ROW_TEXT = { title: ROW_TITLE_CHARS, snippet: ROW_SNIPPET_CHARS, info: ROW_INFO_CHARS,
                   day: ROW_WHEN_CHARS, time: ROW_WHEN_CHARS, date: ROW_WHEN_CHARS };

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

// May the first screen's text of database `name` be remembered? Only for the remembered
// space's own database, and only when its copy is not locked by a passphrase (that protects
// the space at rest; its notes are shown only once it is unlocked).
function rowsAllowed(name) {
  const s = loadSpace();
  return !!s && typeof s === "object" && s.db === name && s.locked === false && !s.passphrase;
}

// Remember the first screen for the database `name`: `rows` are the display rows (format.js
// displayRow, each with `id`) of the list in the order shown under `sort`; written only when
// it changed. The rows' text is kept only where rowsAllowed, and only within the limits
// above; otherwise the ids alone.
export function saveFirstScreen(name, sort, rows) {
  const first = rows.slice(0, FIRST_SCREEN_ROWS);
  const ids = first.map((r) => r.id);
  let text = JSON.stringify({ sort, ids });
  if (rowsAllowed(name)) {
    const withRows = JSON.stringify({ sort, ids, rows: first.map((r) => ({
      title: r.title, snippet: r.snippet, info: r.info, day: r.day, time: r.time, date: r.date,
      pinned: r.pinned, done: r.done })) });
    if (withRows.length <= MAX_FIRST_SCREEN_CHARS && !first.some((r) => rowProblem(r))) text = withRows;
  }
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
    // Storage refused: the entry stays, read only for this database (and rows only while its
    // space is remembered unlocked).
  }
}

// The remembered first screen of `name` as stored (an object), or null: none, too long,
// not JSON, not an object, or another sort.
function remembered(name, sort) {
  try {
    const text = localStorage.getItem(HINT_PREFIX + name);
    if (typeof text !== "string" || text.length > MAX_FIRST_SCREEN_CHARS) return null;
    const h = JSON.parse(text);
    return h && typeof h === "object" && h.sort === sort ? h : null;
  } catch (_) {
    return null; // Malformed or storage refused: as if there were none.
  }
}

function idsOf(h) {
  const ids = h && h.ids;
  return Array.isArray(ids) && ids.length >= 1 && ids.length <= FIRST_SCREEN_ROWS
    && ids.every((id) => typeof id === "string" && id.length > 0) && new Set(ids).size === ids.length ? ids : null;
}

// The remembered first screen's ids for `sort`, or null (none, another sort, or malformed).
export function loadFirstScreen(name, sort) {
  return idsOf(remembered(name, sort));
}

// Why a display row cannot be remembered or drawn (a string), or null.
export function rowProblem(r) {
  if (!r || typeof r !== "object" || Array.isArray(r)) return "not an object";
  for (const [k, max] of Object.entries(ROW_TEXT))
    if (typeof r[k] !== "string" || r[k].length > max) return `${k} is not text within ${max} characters`;
  if (typeof r.pinned !== "boolean" || typeof r.done !== "boolean") return "pinned/done are not booleans";
  return null;
}

// The remembered first screen of `name` under `sort` as display rows ({id, title, snippet,
// info, day, time, date, pinned, done}, in the order shown), or null: none, rows not
// remembered (a locked space, an entry too long), or anything malformed (then none is used).
export function loadRememberedRows(name, sort) {
  if (!rowsAllowed(name)) return null;
  const h = remembered(name, sort);
  const ids = idsOf(h);
  if (!ids || !Array.isArray(h.rows) || h.rows.length !== ids.length || h.rows.some((r) => rowProblem(r))) return null;
  return h.rows.map((r, i) => ({ id: ids[i], title: r.title, snippet: r.snippet, info: r.info, day: r.day,
                                 time: r.time, date: r.date, pinned: r.pinned, done: r.done }));
}
