// Ostracon Notes: the elements of one row of the note list, from its display row (format.js
// displayRow): the list (listview.js) and the remembered first screen (firstscreen.js) build
// their rows here, so a remembered row is the live row. No imports; text goes in only as
// textContent, never as markup.

const SVG = "http://www.w3.org/2000/svg";
const PIN_PATH = "M10.5 1.5l4 4-2 1-3 3 .5 3.5-1.5 1.5-3-3-3.5 3.5-.9-.9L4.6 10.6l-3-3L3.1 6l3.5.5 3-3z";

function span(className, text) {
  const s = document.createElement("span");
  s.className = className;
  if (text !== undefined) s.textContent = text;
  return s;
}

function pinMark() {
  const pin = span("pin");
  pin.title = "Pinned";
  const svg = document.createElementNS(SVG, "svg");
  for (const [k, v] of [["viewBox", "0 0 16 16"], ["width", "14"], ["height", "14"], ["aria-hidden", "true"]])
    svg.setAttribute(k, v);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PIN_PATH);
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  pin.append(svg, span("sr-only", "pinned"));
  return pin;
}

// The row's last line: its info, then the time of the last edit on its day (`today`: the
// Date.toDateString of now), else its date.
export function rowMeta(r, today) {
  return [r.info, r.day === today ? r.time : r.date].filter(Boolean).join(" · ");
}

// One row of the list (an <li> holding a button) for display row `r`; `current`: it is the
// open note; `today` as in rowMeta.
export function rowElement(r, today, current = false) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "note-item" + (r.done ? " done" : "");
  b.dataset.id = r.id;
  if (current) b.setAttribute("aria-current", "true");
  const head = span("note-head");
  head.append(span("note-title", r.title));
  if (r.pinned) head.append(pinMark());
  b.append(head, span("note-snippet", r.snippet), span("note-meta", rowMeta(r, today)));
  li.append(b);
  return li;
}
