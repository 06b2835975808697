// First paint: the note list from the engine's read view, before the engine is ready.
//
// Ostracon.peek reads the documents the engine keeps in IndexedDB for exactly this (plain JS,
// no Python): the list appears while Pyodide still loads, read-only (the list is inert until
// the engine is ready), and is replaced by the engine's own answer once it is. The view only
// ever holds durable documents and deleted notes have no row, so the swap never brings back a
// removed note; a note a peer changed meanwhile simply updates.
//
// Events for tests and diagnostics go to `window.__notes.timeline` in order:
// {event: "peek", count, reason} when the view was read, {event: "firstpaint", count, ids}
// when it was painted, {event: "ready"} when live data replaced it ("stale-peek" when the view
// answered only after the engine: ignored).

import Ostracon from "../ostracon.js";

function timeline() {
  const n = (window.__notes = window.__notes || {});
  return (n.timeline = n.timeline || []);
}

export function mark(event, detail = {}) {
  timeline().push({ event, at: performance.now(), ...detail });
}

// Start reading the view of `collection` in the database `name`; `paint(docs)` runs once if
// the stored documents arrive before `live()` is called. Returns {live, peeked}: call live()
// when the engine's data is shown (later view answers are dropped); `peeked` resolves to the
// peek result ({docs, reason}).
export function firstPaint(name, collection, paint) {
  let isLive = false;
  const peeked = Ostracon.peek(name, collection).then((r) => {
    mark("peek", { count: r.docs ? r.docs.length : null, reason: r.reason });
    if (isLive) {
      mark("stale-peek");
      return r;
    }
    if (r.docs) {
      paint(r.docs);
      mark("firstpaint", { count: r.docs.length, ids: r.docs.map((d) => d._id) });
    }
    return r;
  });
  return {
    peeked,
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
