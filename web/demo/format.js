// Ostracon Notes: how a note's values read on the page — any synced value as text, times, tags,
// the list's order, and the text a list row shows (displayRow). No DOM, and its one import
// has none either, so the page's first module (early.js) can load it while the page is still
// arriving.
//
// The locale's formatters and collators are built on first use, not when this module loads:
// the first one of each kind in a new page loads its locale data (tens of ms on a busy
// machine). prepareFormats() builds the ones a first paint needs, so the page can pay for them
// while it waits for IndexedDB and the rest of its modules rather than while it draws.

import { ROW_INFO_CHARS, ROW_SNIPPET_CHARS, ROW_TITLE_CHARS } from "./remembered.js";

let dates = null; // {time, date}: Intl.DateTimeFormat, built by formats()
let titles = null; // Intl.Collator for titles, built by titleCollator()

function formats() {
  return (dates ??= {
    time: new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    date: new Intl.DateTimeFormat([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }),
  });
}

function titleCollator() {
  return (titles ??= new Intl.Collator(undefined, { sensitivity: "base" }));
}

// Build what drawing the list under `sort` needs (every row shows a time; "title" also
// compares titles by the locale).
export function prepareFormats(sort) {
  formats();
  if (sort === "title") titleCollator();
}

export function timeWords(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  const f = formats();
  return (sameDay ? f.time : f.date).format(d);
}

// Any value a peer may have synced (a number, null, a map, bytes), as text for the page.
export function asText(v) {
  if (v == null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (v instanceof Uint8Array) return `(${v.length} bytes)`;
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString()
      : x instanceof Uint8Array ? `(${x.length} bytes)` : x));
  } catch (_) {
    return String(v);
  }
}

// `s` cut to at most `max` UTF-16 code units (an ellipsis ends a cut one), never inside a
// surrogate pair.
export function clip(s, max) {
  if (s.length <= max) return s;
  let end = max - 1;
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end -= 1;
  return s.slice(0, end) + "…";
}

// The text one row of the list shows for note `d` (listview.js draws it, noterow.js builds
// its elements): {id, title, snippet, info, day, time, date, pinned, done}. `info` is the row's
// state and tags; the row shows `time` on the day `day` (Date.toDateString of the last edit)
// and `date` on any other, so a remembered row (remembered.js) reads right on a later day
// without formatting anything.
export function displayRow(d) {
  const ms = d._updated;
  const at = ms && Number.isFinite(ms) && !Number.isNaN(new Date(ms).getTime()) ? new Date(ms) : null;
  const f = at ? formats() : null;
  return {
    id: d._id,
    title: clip(asText(d.title), ROW_TITLE_CHARS) || (d._deleted ? "Deleted note" : "Untitled"),
    snippet: d._deleted ? "Open its history to restore it" : clip(asText(d.body), ROW_SNIPPET_CHARS) || " ",
    info: clip([d._deleted ? "deleted" : "", d.done ? "done" : "", tagsOf(d).map((t) => `#${t}`).join(" ")]
      .filter(Boolean).join(" · "), ROW_INFO_CHARS),
    day: at ? at.toDateString() : "",
    time: at ? f.time.format(at) : "",
    date: at ? f.date.format(at) : "",
    pinned: !!d.pinned,
    done: !!d.done,
  };
}

export function tagsOf(d) {
  return Array.isArray(d.tags) ? d.tags.filter((t) => typeof t === "string") : [];
}

// Ids are opaque: the last tie-break compares them by UTF-16 code units (what JS `<` does, and
// the read view's key order), which is total, needs no locale data and is the same everywhere.
function compareIds(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

// The list's order for a sort ("updated", "created", "title"): pinned notes first, then the
// sort key, then the id.
export function compareNotes(sort) {
  const key = {
    updated: (a, b) => (b._updated || 0) - (a._updated || 0),
    created: (a, b) => (b._created || 0) - (a._created || 0),
    title: (a, b) => titleCollator().compare(asText(a.title), asText(b.title)),
  }[sort] || (() => 0);
  return (a, b) => (b.pinned ? 1 : 0) - (a.pinned ? 1 : 0) || key(a, b) || compareIds(a._id, b._id);
}
