// First paint: the note list from the engine's read view, before the engine is ready.
//
// Ostracon.peek (../readview.js, imported directly so nothing else has to load first) reads the
// documents the engine keeps in IndexedDB for exactly this (plain JS, no Python). The page
// paints its first screen at once, fills in the rest of the list in pages while the page is
// idle, and swaps to the engine's own answer once the engine is ready (the list is inert until
// then). The view only ever holds durable documents and deleted notes have no row, so the
// swap never brings back a removed note; a note a peer changed meanwhile simply updates.
//
// Which notes are the first screen: the list is ordered by compareNotes (pinned, then most
// recently edited, …), not by id as the view's key order is. So the app remembers, per
// database, the ids of its first FIRST_SCREEN_ROWS notes whenever it shows live data
// (saveFirstScreen in early.js, in localStorage), and the next visit reads exactly those rows
// (peek `ids`) and sorts them with the same comparator: for unchanged data the first screen is
// the live first screen, and the swap moves nothing. Without that list (first visit of a
// database) the whole view is read (one read) before painting, so the order is right then too.
// The list is only a hint: the rows always come from the view, checked as peek checks them.
// (The app also remembers the text of those rows, which firstscreen.js draws while the page is
// parsed; this paint replaces it, so what the view holds wins within the same page load.)
//
// Events for tests and diagnostics go to `window.__notes.timeline` in order, each with `at`
// (performance.now()): {event: "peek", count, reason, hinted, timing, early, inline, startedAt,
// doneAt} when the first screen's read is taken up (timing: peek's; early: the read began at page
// load in early.js; inline: in the page's inline copy of it; startedAt/doneAt: when it began and
// was answered); {event: "firstpaint", count,
// ids} when it was painted; {event: "fill", count} per page added; {event: "filled", count}
// once the whole view is in the list ("fill-stopped" with a reason when the view changed
// meanwhile); {event: "ready"} when the engine is ready and its data replaces the view's
// ("stale-peek" when the view answered only after that: ignored).

import { peek } from "../readview.js";
import { FIRST_SCREEN_ROWS, startRead } from "./early.js";

export { FIRST_SCREEN_ROWS };

// Documents per page when filling the rest of the list from the view. Each read opens the
// database and a transaction (tens of ms on a busy machine), so pages are large; one page's
// rows are decoded on the main thread in a few tens of ms, short enough to keep it responsive.
export const FILL_PAGE_ROWS = 2000;

// How long the engine's start (loading the runtime, spawning its worker) waits for the first
// paint: the paint needs the main thread for a few ms, the engine's start far longer, so the
// paint goes first; a slow IndexedDB (up to peek's own timeout) never holds the engine back by
// more than this.
export const FIRST_PAINT_HEAD_START_MS = 100;

function timeline() {
  const n = (window.__notes = window.__notes || {});
  return (n.timeline = n.timeline || []);
}

export function mark(event, detail = {}) {
  timeline().push({ event, at: performance.now(), ...detail });
}

// Longest wait for an idle moment before background work runs anyway: a page that is never
// idle (typing, a busy engine start) still fills its list within about this bound per step.
export const IDLE_TIMEOUT_MS = 200;

// Run `fn` when the page is idle (requestIdleCallback where it exists, else the next task).
export function whenIdle(fn) {
  if (typeof requestIdleCallback === "function") requestIdleCallback(() => fn(), { timeout: IDLE_TIMEOUT_MS });
  else setTimeout(fn, 0);
}

const idle = () => new Promise((ok) => whenIdle(ok));

// Resolves once the first paint of `run` is drawn (or found impossible), or after
// FIRST_PAINT_HEAD_START_MS, whichever comes first: when to start the engine.
export function headStart(run) {
  return Promise.race([run.peeked, new Promise((ok) => setTimeout(ok, FIRST_PAINT_HEAD_START_MS))]);
}

// Paint the view of `collection` in the database `name`. Handlers:
//   paint(docs)  once, with the first screen sorted by `compare` (if it arrives before live());
//   fill(docs, last)  per further page of the view, until the whole view is in (`last`: this
//                is the final page) or live() is called;
// `sort` names the order `compare` implements (the remembered first screen is per sort);
// `pageRows` is the fill's page size (FILL_PAGE_ROWS); `read` is a read startRead began
// earlier, used if it is for the same database, collection and sort (else a new one starts).
// Returns {peeked, filled, live(db)}: call live() when the engine is ready (later view answers
// are dropped); `peeked` resolves to the first read's result ({docs, reason, …}) once it is
// painted (or found unusable), `filled` once filling has ended.
export function firstPaint(name, collection, { sort, compare, paint, fill, pageRows = FILL_PAGE_ROWS, read = null }) {
  let isLive = false;
  const early = !!read && read.name === name && read.collection === collection && read.sort === sort;
  const first = early ? read : startRead(name, collection, sort);
  const hint = first.hint;
  const peeked = first.result.then((r) => {
    mark("peek", { count: r.docs ? r.docs.length : null, reason: r.reason, hinted: !!hint, timing: r.timing,
                   early, inline: !!first.inline, startedAt: first.startedAt, doneAt: first.doneAt });
    if (isLive) {
      mark("stale-peek");
      return r;
    }
    if (r.docs) {
      const docs = [...r.docs].sort(compare);
      paint(docs);
      mark("firstpaint", { count: docs.length, ids: docs.map((d) => d._id) });
    }
    return r;
  });
  const filled = peeked.then(async (r) => {
    if (!r.docs || isLive) return;
    let count = r.docs.length;
    if (hint) {
      // The rest of the view, page by page, all from the state the first screen came from.
      count = 0;
      let after = null;
      for (;;) {
        await idle();
        if (isLive) return;
        const page = await peek(name, collection, { after, limit: pageRows });
        if (isLive) return;
        if (!page.docs || page.position !== r.position) {
          mark("fill-stopped", { reason: page.reason || "stale" });
          return;
        }
        fill(page.docs, !page.next);
        count += page.docs.length;
        mark("fill", { count: page.docs.length, timing: page.timing });
        if (!page.next) break;
        after = page.next;
      }
    }
    mark("filled", { count });
  });
  return {
    name,
    peeked,
    filled,
    get isLive() { return isLive; },
    live(db) {
      isLive = true;
      mark("ready");
      // A view peek found damaged is rewritten from the engine's documents for next time.
      peeked.then((r) => {
        if (r.reason && r.reason.startsWith("damaged") && db) db.rebuildView().catch(() => {});
      });
    },
  };
}
