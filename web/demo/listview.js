// Ostracon Notes: the note list — its order, its rows, search/filter/sort, keyboard moves.
//
// A long list never blocks the page: renderList() builds the first LIST_FIRST_ROWS rows (more
// than any screen shows) and a sentinel row; LIST_CHUNK_ROWS more are appended whenever the
// sentinel comes within LIST_AHEAD_PX of the visible part of the list (IntersectionObserver),
// so the DOM grows as the reader scrolls. The order is compareNotes(sort) (format.js): pinned
// first, then the chosen key, then the id, so it is total and the same for documents from the
// read view (firstpaint.js) and from the engine.

import { $, state } from "./state.js";
import { FIRST_SCREEN_ROWS, saveFirstScreen } from "./early.js";
import { asText, compareNotes, displayRow, tagsOf, timeWords } from "./format.js";
import { rowElement } from "./noterow.js";

export { asText, compareNotes, tagsOf, timeWords };

// Rows built at once: a screen and a half on the tallest window (rows are ≥ 56 px).
export const LIST_FIRST_ROWS = 60;
// Rows appended each time the reader nears the end of what is built.
export const LIST_CHUNK_ROWS = 100;
// How far below the visible part the sentinel starts the next chunk: a few rows of headroom,
// so scrolling never reaches an unbuilt end.
export const LIST_AHEAD_PX = 800;

function visibleNotes() {
  const q = $("search").value.trim().toLowerCase();
  const filter = $("filter").value;
  let list = [...(filter === "deleted" ? state.deleted : state.notes).values()];
  if (q) {
    list = list.filter((d) => `${asText(d.title)}\n${asText(d.body)}\n${tagsOf(d).join(" ")}`.toLowerCase().includes(q));
  }
  if (filter === "active") list = list.filter((d) => !d.done);
  else if (filter === "done") list = list.filter((d) => d.done);
  else if (filter === "pinned") list = list.filter((d) => d.pinned);
  else if (filter.startsWith("tag:")) list = list.filter((d) => tagsOf(d).includes(filter.slice(4)));
  list.sort(compareNotes($("sort").value));
  return list;
}

function renderTagFilter() {
  const sel = $("filter");
  const tags = new Set();
  for (const d of state.notes.values()) for (const t of tagsOf(d)) tags.add(t);
  const want = [...tags].sort();
  const have = [...sel.options].filter((o) => o.value.startsWith("tag:")).map((o) => o.value.slice(4));
  if (want.join("\0") === have.join("\0")) return;
  const cur = sel.value;
  for (const o of [...sel.options]) if (o.value.startsWith("tag:")) o.remove();
  for (const t of want) sel.add(new Option(`#${t}`, `tag:${t}`));
  sel.value = [...sel.options].some((o) => o.value === cur) ? cur : "all";
}

// One row of the list: a button that opens the note (or, for a deleted one, its history).
export function noteRow(d, onOpen) {
  const li = rowElement(displayRow(d), new Date().toDateString(), !!state.current && state.current.id === d._id);
  if (onOpen) li.firstChild.addEventListener("click", () => onOpen(d));
  return li;
}

let openHandler = null;
let pending = null; // the rows of the current render not built yet: {list, at, sentinel}
let listStale = false; // notes were added (addNotes) since the list was sorted
let built = 0; // rows of the current list built

// What a click on a row does (the app sets it once its editor exists).
export function onOpenNote(fn) { openHandler = fn; }

function appendRows(upTo) {
  const p = pending;
  if (!p) return;
  const frag = document.createDocumentFragment();
  for (const d of p.list.slice(p.at, upTo)) frag.append(noteRow(d, openHandler));
  p.sentinel.before(frag);
  p.at = Math.min(upTo, p.list.length);
  built = p.at;
  if (p.at >= p.list.length) {
    observer.unobserve(p.sentinel);
    p.sentinel.remove();
    pending = null;
  }
}

const observer = new IntersectionObserver((entries) => {
  if (!pending || !entries.some((e) => e.isIntersecting && e.target === pending.sentinel)) return;
  if (listStale) renderList(pending.at + LIST_CHUNK_ROWS);
  else appendRows(pending.at + LIST_CHUNK_ROWS);
  // Still near the end after this chunk: observing again reports it at once.
  if (pending) {
    observer.unobserve(pending.sentinel);
    observer.observe(pending.sentinel);
  }
}, { rootMargin: `0px 0px ${LIST_AHEAD_PX}px 0px` });

// Build every row not built yet (e.g. before moving to the last row).
export function renderRest() {
  if (pending) appendRows(pending.list.length);
}

// Sort and draw the list: its first `rows` rows (at least LIST_FIRST_ROWS; by default as many
// as are built now, so a redraw keeps the reader's place) at once.
export function renderList(rows = built) {
  listStale = false;
  renderTagFilter();
  const ul = $("notes");
  const list = visibleNotes();
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".note-item");
  const focusedId = focused ? focused.dataset.id : null;
  const focusAt = focusedId ? list.findIndex((d) => d._id === focusedId) : -1;
  if (pending) observer.unobserve(pending.sentinel);
  const sentinel = Object.assign(document.createElement("li"), { className: "more" });
  sentinel.setAttribute("aria-hidden", "true");
  ul.replaceChildren(sentinel);
  pending = { list, at: 0, sentinel };
  appendRows(Math.max(LIST_FIRST_ROWS, Number.isSafeInteger(rows) ? rows : 0, focusAt + 1));
  if (pending) observer.observe(sentinel);
  $("empty").hidden = state.notes.size > 0;
  const total = state.notes.size;
  $("list-count").textContent = total ? (list.length === total ? `${total} note${total === 1 ? "" : "s"}` : `${list.length} of ${total} notes`) : "";
  if (focusedId) {
    const again = ul.querySelector(`[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
  // Live data in the default view: remember its first screen for the next first paint.
  if (state.live && state.db && !$("search").value.trim() && $("filter").value === "all")
    saveFirstScreen(state.db.info.name, $("sort").value, list.slice(0, FIRST_SCREEN_ROWS).map(displayRow));
}

// The first screen from the read view (firstpaint.js): shown inert until live data replaces it.
export function paintNotes(docs) {
  state.notes = new Map(docs.map((d) => [d._id, d]));
  $("app").inert = true;
  $("app").hidden = false;
  renderList();
}

// A further page of the read view. Rows beyond the ones built are drawn only when the reader
// scrolls to them or the last page is in, so filling costs one sort, not one per page.
export function addNotes(docs, last) {
  for (const d of docs) state.notes.set(d._id, d);
  if (last) renderList();
  else {
    listStale = true;
    $("list-count").textContent = `${state.notes.size} notes…`;
  }
}

// Arrow keys move through the list.
$("notes").addEventListener("keydown", (ev) => {
  if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp" && ev.key !== "Home" && ev.key !== "End") return;
  if (ev.key === "End") renderRest();
  const items = [...$("notes").querySelectorAll(".note-item")];
  const i = items.indexOf(document.activeElement);
  let j = ev.key === "ArrowDown" ? i + 1 : ev.key === "ArrowUp" ? i - 1 : ev.key === "Home" ? 0 : items.length - 1;
  j = Math.max(0, Math.min(items.length - 1, j));
  if (items[j]) { items[j].focus(); ev.preventDefault(); }
});

for (const id of ["search", "filter", "sort"]) $(id).addEventListener("input", () => renderList(LIST_FIRST_ROWS));
