// The history of one note as a picture: its commit DAG in SVG.
//
// Rows are commits, newest on top (the engine gives them parents first: height, clock, cid).
// Columns ("lanes") separate concurrent branches: a commit continues its first parent's lane
// unless a sibling already took it; a merge (two or more parents) closes the lanes of its
// other parents. Edges go from each commit to its parents, so forks and merges show as
// diverging and joining lines.

const SVG_NS = "http://www.w3.org/2000/svg";
export const ROW_H = 64; // px per commit row: matches .commit height in styles.css
const LANE_W = 22;
const PAD = 18;
const R = 7;

const FINGERPRINT_LABEL = new TextEncoder().encode("ostracon/fingerprint/v1\0");
const B32 = "abcdefghijklmnopqrstuvwxyz234567";
const fpCache = new Map();

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function base32(bytes) {
  let bits = 0, value = 0, out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

// The same short fingerprint as Python's ostracon.crypto.identity.fingerprint_of.
export async function fingerprint(actorHex) {
  let fp = fpCache.get(actorHex);
  if (fp) return fp;
  const actor = hexToBytes(actorHex);
  const msg = new Uint8Array(FINGERPRINT_LABEL.length + actor.length);
  msg.set(FINGERPRINT_LABEL);
  msg.set(actor, FINGERPRINT_LABEL.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", msg)).slice(0, 10);
  const text = base32(digest);
  fp = [0, 4, 8, 12].map((i) => text.slice(i, i + 4)).join("-");
  fpCache.set(actorHex, fp);
  return fp;
}

export function actorColor(actorHex) {
  const hue = (parseInt(actorHex.slice(0, 6), 16) % 360);
  return `hsl(${hue} 70% 36%)`;
}

// Lanes for commits given parents first. Returns Map cid -> lane and the lane count.
export function layout(commits) {
  const lanes = [];
  const laneOf = new Map();
  for (const c of commits) {
    let lane = -1;
    for (const p of c.parents) {
      const l = lanes.indexOf(p);
      if (l >= 0 && (lane < 0 || l < lane)) lane = l;
    }
    // a merge: the other parents' branches end here
    for (const p of c.parents) {
      const l = lanes.indexOf(p);
      if (l >= 0 && l !== lane) lanes[l] = null;
    }
    if (lane < 0) {
      lane = lanes.indexOf(null);
      if (lane < 0) lane = lanes.length;
    }
    lanes[lane] = c.cid;
    laneOf.set(c.cid, lane);
  }
  return { laneOf, width: Math.max(1, lanes.length) };
}

function el(name, attrs) {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// The SVG for commits (parents first); rows drawn newest first.
export function dagSvg(commits, { selected, thisActor }) {
  const { laneOf, width } = layout(commits);
  const n = commits.length;
  const rowOf = new Map(commits.map((c, i) => [c.cid, n - 1 - i]));
  const w = PAD * 2 + (width - 1) * LANE_W;
  const h = n * ROW_H;
  const x = (cid) => PAD + laneOf.get(cid) * LANE_W;
  const y = (cid) => rowOf.get(cid) * ROW_H + ROW_H / 2;
  const svg = el("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, class: "dag-svg", role: "img",
    "aria-label": `Commit graph: ${n} commits, ${width} branch${width === 1 ? "" : "es"}` });
  const edges = el("g", { class: "edges" });
  for (const c of commits) {
    for (const p of c.parents) {
      if (!rowOf.has(p)) continue;
      const x1 = x(c.cid), y1 = y(c.cid), x2 = x(p), y2 = y(p);
      const d = x1 === x2
        ? `M${x1},${y1} L${x2},${y2}`
        : `M${x1},${y1} C${x1},${y1 + ROW_H * 0.6} ${x2},${y2 - ROW_H * 0.6} ${x2},${y2}`;
      edges.append(el("path", { d, class: "edge", stroke: actorColor(c.actor) }));
    }
  }
  svg.append(edges);
  const nodes = el("g", { class: "nodes" });
  for (const c of commits) {
    const g = el("g", { class: "node" + (c.cid === selected ? " selected" : ""), "data-cid": c.cid });
    const mine = c.actor === thisActor;
    if (c.cid === selected) g.append(el("circle", { cx: x(c.cid), cy: y(c.cid), r: R + 4, class: "halo" }));
    const shape = c.parents.length > 1
      ? el("rect", { x: x(c.cid) - R, y: y(c.cid) - R, width: R * 2, height: R * 2, rx: 2, transform: `rotate(45 ${x(c.cid)} ${y(c.cid)})` })
      : el("circle", { cx: x(c.cid), cy: y(c.cid), r: R });
    shape.setAttribute("fill", mine ? actorColor(c.actor) : "var(--bg)");
    shape.setAttribute("stroke", actorColor(c.actor));
    shape.setAttribute("stroke-width", "3");
    const t = el("title");
    t.textContent = `${c.cid.slice(0, 12)}… height ${c.height}${c.parents.length > 1 ? " (merge)" : ""}`;
    g.append(shape, t);
    nodes.append(g);
  }
  svg.append(nodes);
  return svg;
}

function short(v) {
  const s = typeof v === "string" ? `“${v}”` : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 39)}…` : s;
}

const isBlank = (v) => v === "" || v === false || v === null || (Array.isArray(v) && !v.length);

// "what changed" in words, from a commit's ops. For a creation, empty defaults are skipped.
export function describeOps(ops, isFirst) {
  if (!ops.length) return isFirst ? "created (empty)" : "no field changes";
  const parts = [];
  for (const op of ops) {
    if (op[0] === "s") { if (!(isFirst && isBlank(op[2]))) parts.push(`${op[1]} ${short(op[2])}`); }
    else if (op[0] === "u") parts.push(`removed ${op[1]}`);
    else if (op[0] === "i") parts.push(`${op[1]} ${op[2] >= 0 ? "+" : ""}${op[2]}`);
    else if (op[0] === "x") parts.push("deleted the note");
  }
  if (isFirst) return parts.length ? `created: ${parts.join(", ")}` : "created (empty)";
  return parts.join(", ");
}

export const SIGNATURE_WORDS = {
  verified: ["signed", "Signature checked: made by this author's key"],
  pending: ["signing…", "Not signed yet: it is signed when it is saved to this device"],
  unsigned: ["unsigned", "No valid signature covers this commit"],
};
