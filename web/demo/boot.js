// Ostracon Notes: the page's entry module. The page may already show the remembered first
// screen (firstscreen.js, drawn while the page was parsed); this module paints the stored
// notes from the read view — the read early.js started at page load (firstpaint.js) — before
// anything heavy loads (the runtime ../ostracon.js, the editor, the dialogs, the engine's
// worker), and only then loads the app (app.js), which starts the engine. Its imports are the
// few small modules a first paint needs.

import { $, COLLECTION } from "./state.js";
import { addNotes, compareNotes, paintNotes } from "./listview.js";
import { firstPaint, headStart, mark } from "./firstpaint.js";
import { afterFirstScreen, databaseToOpen, startupChoice, takeStartedRead } from "./early.js";
import { prepareFormats } from "./format.js";
import { REMEMBERED_SLOT } from "./firstscreen.js";

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
  return firstPaint(name, COLLECTION, { sort, compare: compareNotes(sort), paint: paintNotes, fill: addNotes,
                                        read: takeStartedRead(name, COLLECTION, sort) });
}

const db = databaseToOpen(startupChoice());
// The remembered first screen the page drew while it was parsed (firstscreen.js), if any.
const remembered = globalThis[REMEMBERED_SLOT];
if (remembered) {
  delete globalThis[REMEMBERED_SLOT];
  mark("remembered", remembered);
}
if (db) {
  mark("boot");
  early = notesFirstPaint(db);
  // early.js builds the formats for the default order; another order may need more.
  afterFirstScreen(db, () => prepareFormats($("sort").value));
  headStart(early).then(() => import("./app.js"));
} else {
  import("./app.js");
}
