// Ostracon Notes: the page's entry module. It starts reading the stored notes from the read
// view before anything heavy loads — the runtime (../ostracon.js), the editor, the dialogs,
// the engine's worker — paints them (firstpaint.js), and only then loads the app (app.js),
// which starts the engine. Its imports are the few small modules a first paint needs.

import { $, COLLECTION } from "./state.js";
import { addNotes, compareNotes, paintNotes } from "./listview.js";
import { firstPaint, headStart, mark } from "./firstpaint.js";
import { needsUnlock } from "./members.js";

const SPACE_KEY = "ostracon-notes/space";

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

let early = null;

// The first paint of database `name`: the one started at page load if it is for `name`, else a
// new one (firstpaint.js).
export function notesFirstPaint(name) {
  if (early && early.name === name && !early.isLive) {
    const run = early;
    early = null;
    return run;
  }
  const sort = $("sort").value;
  return firstPaint(name, COLLECTION, { sort, compare: compareNotes(sort), paint: paintNotes, fill: addNotes });
}

const choice = startupChoice();
// A remembered space names its database; an earlier passphrase space's name is derived
// (app.js), so its first paint starts there.
if (choice.open && typeof choice.open.db === "string" && choice.open.db) {
  mark("boot");
  early = notesFirstPaint(choice.open.db);
  headStart(early).then(() => import("./app.js"));
} else {
  import("./app.js");
}
