// Ostracon Notes: how a note's values read on the page — any synced value as text, times, tags,
// and the list's order. No imports and no DOM, so the page's first module (early.js) can load
// it while the page is still arriving.
//
// The locale's formatters and collators are built on first use, not when this module loads:
// the first one of each kind in a new page loads its locale data (tens of ms on a busy
// machine). prepareFormats() builds the ones a first paint needs, so the page can pay for them
// while it waits for IndexedDB and the rest of its modules rather than while it draws.

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
