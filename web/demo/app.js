// Ostracon Notes: the offline-first PWA on top of the Ostracon browser runtime.
//
// Data flow: every edit goes to the engine (memory first, then flushed to IndexedDB), the
// engine's change feed drives what the list shows, and the relay status drives the sync bar.
// The tabs of this origin share one engine (the runtime's default, tabs: "share"), so every
// tab is live.

import Ostracon from "../ostracon.js";
import { dagSvg, describeOps, fingerprint, actorColor, SIGNATURE_WORDS, ROW_H } from "./history.js";
import { verifyAll } from "./verify.js";
import { createEditor } from "./editor.js";
import { isLegacy, needsUnlock, renderMembers, savedForm, setupJoinForms, setupMembers, showUnlock, spaceOption } from "./members.js";

const COLLECTION = "notes";
const SPACE_KEY = "ostracon-notes/space";
const KNOWN_KEY = "ostracon-notes/known-databases";
// Page size when loading every note (scan is paged by the engine).
const SCAN_PAGE = 500;
const BOOT_PHASES = ["pyodide", "packages", "host", "space", "storage", "replay", "ready"];
const PHASE_WORDS = {
  pyodide: "Loading Python (WebAssembly)…",
  packages: "Loading the Ostracon engine…",
  host: "Starting the engine…",
  space: "Deriving the space key from your passphrase…",
  storage: "Opening this device's storage…",
  replay: "Reading your notes…",
  ready: "Ready",
};

const $ = (id) => document.getElementById(id);
const state = {
  db: null,
  notes: new Map(),
  deleted: new Map(), // deleted notes (their history is kept), loaded for the "Deleted" filter
  current: null, // {id, draft, dirty: Set, timer, saving: Promise, lastSave}
  sync: { state: "opening" },
  lastSynced: null,
  space: null,
  history: null, // {id, commits, selected}
};

// Test and debugging handle (read-only use: the e2e tests wait on these).
window.__notes = { state, ready: false, swReady: false, events: 0 };

// ---- small helpers ----------------------------------------------------------------------

function show(id, on = true) { $(id).hidden = !on; }

function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

function timeWords(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function newId() {
  // Sortable by creation time, unique without coordination: ms timestamp + 8 random bytes.
  const rnd = Array.from(crypto.getRandomValues(new Uint8Array(8)), (x) => x.toString(16).padStart(2, "0")).join("");
  return `n${Date.now().toString(36)}-${rnd}`;
}

async function sha256hex(text) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("");
}

// Errors in words a person understands.
function plainError(e) {
  const name = (e && e.name) || "";
  const msg = (e && e.message) || String(e);
  if (name === "WrongKeyError" || /wrong passphrase|wrong key/i.test(msg))
    return "Wrong passphrase, or an invite to another space than the one this device keeps here.";
  if (name === "NotAMemberError") return "This device was removed from the space: it no longer receives new notes.";
  if (name === "ValidationError" && /invite/i.test(msg)) return `That invite does not work: ${msg}`;
  if (name === "DiskFullError" || name === "QuotaExceededError") return "This device is out of storage space: free some space, your last edits are not saved.";
  if (name === "LockedError") return "Another window is using this space and did not hand it over.";
  if (name === "StorageUnavailableError") return "The browser refused access to local storage (private mode?).";
  if (name === "TransportError" || /websocket|connect/i.test(msg)) return "Cannot reach the sync server. Your changes are kept on this device.";
  if (name === "ProtocolError") return "The sync server answered something unexpected; syncing paused.";
  if (name === "ConflictError") return msg;
  return msg;
}

// ---- space configuration ---------------------------------------------------------------

function loadSpace() {
  try {
    return JSON.parse(localStorage.getItem(SPACE_KEY) || "null");
  } catch (_) {
    return null;
  }
}

function saveSpace(s) {
  if (s) localStorage.setItem(SPACE_KEY, JSON.stringify(s));
  else localStorage.removeItem(SPACE_KEY);
}

function relayURL() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

async function dbNameFor(space) {
  const secret = space.invite ? `invite:${space.invite.replace(/\s+/g, "").toLowerCase()}` : `pass:${space.name}\0${space.passphrase}`;
  return `notes-${(await sha256hex(secret)).slice(0, 16)}`;
}

function inviteFromLocation() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get("invite")) return { invite: h.get("invite") };
  if (h.get("space") && h.get("passphrase")) return { name: h.get("space"), passphrase: h.get("passphrase") };
  return null;
}

function showJoin(prefill, error) {
  show("boot", false);
  show("app", false);
  show("space-btn", false);
  show("join");
  if (prefill && prefill.invite) $("invite-text").value = prefill.invite;
  if (isLegacy(prefill)) { // an earlier passphrase space opens only by moving it
    $("old-name").value = prefill.name || "";
    $("old-pass").value = prefill.passphrase;
  }
  showUnlock(prefill && prefill.kind === "kept" && prefill.locked ? prefill : null);
  $("join-error").hidden = !error;
  $("join-error").textContent = error || "";
  setSync({ state: "closed" });
  if ($("unlock-space").hidden) (prefill && prefill.invite ? $("invite-text") : $("space-name")).focus();
}

// ---- opening -----------------------------------------------------------------------------

async function openSpace(space) {
  show("join", false);
  show("boot");
  $("boot-progress").value = 0;
  $("boot-phase").textContent = "Looking for another open window of this space…";
  const name = space.db || await dbNameFor(space);
  const spaceOpt = spaceOption(space);
  const db = Ostracon.connect({
    name,
    space: spaceOpt,
    relay: relayURL(),
    workerURL: new URL("engine-worker.js", import.meta.url).href,
  });
  state.db = db;
  db.status.addEventListener("progress", (ev) => {
    const i = BOOT_PHASES.indexOf(ev.detail.phase);
    $("boot-progress").value = i + 1;
    $("boot-phase").textContent = PHASE_WORDS[ev.detail.phase] || ev.detail.phase;
  });
  db.status.addEventListener("role", (ev) => {
    $("tab-role").textContent = ev.detail.role === "leader" ? "runs the database engine" : "uses the engine of another tab";
  });
  db.status.addEventListener("sync", (ev) => setSync({ ...(ev.detail.detail || {}), state: ev.detail.state }));
  db.status.addEventListener("leader", () => {
    // A (new) leader: anything may have happened meanwhile, so reload the list.
    if (window.__notes.ready) reloadAll().catch(reportError);
  });
  // Before the space is open, failures show on the join screen instead.
  db.status.addEventListener("error", (ev) => { if (window.__notes.ready) reportError(ev.detail.error); });
  try {
    await db.ready;
  } catch (e) {
    await db.close().catch(() => {});
    state.db = null;
    showJoin(space, plainError(e));
    return;
  }
  if (db.role !== "leader") $("tab-role").textContent = "uses the engine of another tab";
  state.space = space;
  saveSpace(savedForm(space, name, db.info));
  // A passphrase typo opens a different (empty) space: say so the first time.
  const known = JSON.parse(localStorage.getItem(KNOWN_KEY) || "[]");
  const isNew = !known.includes(name);
  if (isNew) localStorage.setItem(KNOWN_KEY, JSON.stringify([...known, name]));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  // Events arrive one at a time; the ones of one task are handled together.
  let batch = null;
  db.collection(COLLECTION).subscribe((ev) => {
    if (!batch) {
      batch = [];
      queueMicrotask(() => {
        const events = batch;
        batch = null;
        onEvents(events).catch(reportError);
      });
    }
    batch.push(ev);
  });
  await reloadAll();
  show("boot", false);
  show("app");
  show("space-btn");
  setSync(db.status.syncDetail);
  window.__notes.ready = true;
  $("new-note").focus();
  $("empty").textContent = space.kind === "create"
    ? "A new space with its own random key. Invite your other devices from the Space dialog."
    : isNew
    ? "A new space on this device. Expected notes here? They arrive when another device of this space syncs — if nothing comes, check the space name and passphrase."
    : "No notes yet. Press “+ New note” to write one.";
}

// ---- sync bar ------------------------------------------------------------------------

function setSync(s) {
  const prev = state.sync;
  state.sync = s = s || { state: "disabled" };
  const bar = $("sync");
  let st = s.state;
  if (!navigator.onLine && st !== "closed" && st !== "opening") st = "offline";
  bar.dataset.state = st;
  const words = {
    opening: "Opening…",
    connecting: "Connecting…",
    online: "Online",
    offline: "Offline — changes stay on this device",
    disabled: "Sync is off — changes stay on this device",
    stopped: "Sync stopped",
    handover: "Switching to another tab…",
    closed: "No space open",
  };
  $("sync-state").textContent = words[st] || st;
  const pending = typeof s.pending === "number" ? s.pending : null;
  $("sync-pending").textContent = pending == null ? "" : pending === 0 ? (st === "online" ? "all changes synced" : "nothing waiting to sync") : `${pending} change${pending === 1 ? "" : "s"} waiting`;
  $("sync-peers").textContent = st === "online" && typeof s.peers === "number"
    ? (s.peers ? `${s.peers} other device${s.peers === 1 ? "" : "s"} online` : "no other device online") : "";
  if (st === "online" && (s.synced || pending === 0)) state.lastSynced = Date.now();
  $("sync-last").textContent = state.lastSynced ? `last sync ${timeWords(state.lastSynced)}` : "";
  const err = s.last_error || s.error || s.lastError;
  let errWords = err ? plainError(typeof err === "string" ? { message: err, name: err.split(":")[0] } : err) : "";
  // While offline, "cannot reach the server" is what the state already says.
  if (st === "offline" && /Cannot reach the sync server/.test(errWords)) errWords = "";
  $("sync-error").hidden = !errWords;
  $("sync-error").textContent = errWords;
  if (prev && prev.state !== s.state) window.__notes.syncChanges = (window.__notes.syncChanges || 0) + 1;
  updateSaveState();
}

window.addEventListener("online", () => setSync(state.sync));
window.addEventListener("offline", () => setSync(state.sync));

// ---- the notes list --------------------------------------------------------------------

async function reloadAll() {
  const col = state.db.collection(COLLECTION);
  const notes = new Map();
  let after = null;
  for (;;) {
    const page = await col.scan({ after, limit: SCAN_PAGE });
    for (const d of page.docs) notes.set(d._id, d);
    if (!page.next) break;
    after = page.next;
  }
  state.notes = notes;
  if ($("filter").value === "deleted") await loadDeleted();
  renderList();
  if (state.current && !state.current.draft) {
    const d = notes.get(state.current.id);
    if (d) fillEditor(d, false);
    else closeEditor();
  }
}

async function onEvents(events) {
  window.__notes.events += events.length;
  if (events.some((e) => e.kind === "overflow")) {
    await reloadAll();
    return;
  }
  const ids = [...new Set(events.map((e) => e.id))];
  const docs = await state.db.collection(COLLECTION).getMany(ids);
  ids.forEach((id, i) => {
    if (docs[i]) state.notes.set(id, docs[i]);
    else state.notes.delete(id);
  });
  renderList();
  const cur = state.current;
  if (cur && ids.includes(cur.id) && !cur.draft) {
    const d = state.notes.get(cur.id);
    if (d) fillEditor(d, false);
    else {
      toast("This note was deleted on another device.");
      closeEditor();
    }
    if (state.history && state.history.id === cur.id && $("history").open) loadHistory(cur.id, state.history.selected);
  }
}

// Any value a peer may have synced (a number, null, a map, bytes), as text for the page.
function asText(v) {
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

function tagsOf(d) {
  return Array.isArray(d.tags) ? d.tags.filter((t) => typeof t === "string") : [];
}

function visibleNotes() {
  const q = $("search").value.trim().toLowerCase();
  const filter = $("filter").value;
  const sort = $("sort").value;
  let list = [...(filter === "deleted" ? state.deleted : state.notes).values()];
  if (q) {
    list = list.filter((d) => `${asText(d.title)}\n${asText(d.body)}\n${tagsOf(d).join(" ")}`.toLowerCase().includes(q));
  }
  if (filter === "active") list = list.filter((d) => !d.done);
  else if (filter === "done") list = list.filter((d) => d.done);
  else if (filter === "pinned") list = list.filter((d) => d.pinned);
  else if (filter.startsWith("tag:")) list = list.filter((d) => tagsOf(d).includes(filter.slice(4)));
  const key = {
    updated: (a, b) => (b._updated || 0) - (a._updated || 0),
    created: (a, b) => (b._created || 0) - (a._created || 0),
    title: (a, b) => asText(a.title).localeCompare(asText(b.title), undefined, { sensitivity: "base" }),
  }[sort];
  list.sort((a, b) => (b.pinned ? 1 : 0) - (a.pinned ? 1 : 0) || key(a, b) || a._id.localeCompare(b._id));
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

function renderList() {
  renderTagFilter();
  const ul = $("notes");
  const list = visibleNotes();
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".note-item");
  const focusedId = focused ? focused.dataset.id : null;
  ul.replaceChildren();
  for (const d of list) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "note-item" + (d.done ? " done" : "");
    b.dataset.id = d._id;
    if (state.current && state.current.id === d._id) b.setAttribute("aria-current", "true");
    const title = document.createElement("span");
    title.className = "note-title";
    title.textContent = asText(d.title) || (d._deleted ? "Deleted note" : "Untitled");
    if (d.pinned) {
      const pin = document.createElement("span");
      pin.className = "pin";
      pin.title = "Pinned";
      pin.innerHTML = PIN_SVG;
      b.append(pin);
    }
    const snippet = document.createElement("span");
    snippet.className = "note-snippet";
    snippet.textContent = d._deleted ? "Open its history to restore it" : asText(d.body).slice(0, 140) || " ";
    const meta = document.createElement("span");
    meta.className = "note-meta";
    const tags = tagsOf(d).map((t) => `#${t}`).join(" ");
    meta.textContent = [d._deleted ? "deleted" : "", d.done ? "done" : "", tags, timeWords(d._updated)].filter(Boolean).join(" · ");
    const head = document.createElement("span");
    head.className = "note-head";
    head.append(title);
    if (d.pinned) head.append(b.querySelector(".pin"));
    b.append(head, snippet, meta);
    b.addEventListener("click", () => (d._deleted ? showHistory(d._id) : openNote(d._id)));
    li.append(b);
    ul.append(li);
  }
  $("empty").hidden = state.notes.size > 0;
  const total = state.notes.size;
  $("list-count").textContent = total ? (list.length === total ? `${total} note${total === 1 ? "" : "s"}` : `${list.length} of ${total} notes`) : "";
  if (focusedId) {
    const again = ul.querySelector(`[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
}

// Arrow keys move through the list; "/" focuses search; Alt+N makes a note.
$("notes").addEventListener("keydown", (ev) => {
  if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp" && ev.key !== "Home" && ev.key !== "End") return;
  const items = [...$("notes").querySelectorAll(".note-item")];
  const i = items.indexOf(document.activeElement);
  let j = ev.key === "ArrowDown" ? i + 1 : ev.key === "ArrowUp" ? i - 1 : ev.key === "Home" ? 0 : items.length - 1;
  j = Math.max(0, Math.min(items.length - 1, j));
  if (items[j]) { items[j].focus(); ev.preventDefault(); }
});

document.addEventListener("keydown", (ev) => {
  if (!window.__notes.ready) return;
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
  if (ev.key === "/" && !typing) { $("search").focus(); ev.preventDefault(); }
  if (ev.altKey && (ev.key === "n" || ev.key === "N")) { newNote(); ev.preventDefault(); }
});

for (const id of ["search", "filter", "sort"]) $(id).addEventListener("input", renderList);

const PIN_SVG = '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true"><path d="M10.5 1.5l4 4-2 1-3 3 .5 3.5-1.5 1.5-3-3-3.5 3.5-.9-.9L4.6 10.6l-3-3L3.1 6l3.5.5 3-3z" fill="currentColor"/></svg><span class="sr-only">pinned</span>';

// ---- the editor (editor.js) ------------------------------------------------------------

const editor = createEditor({
  state, $, show, toast, timeWords, asText, tagsOf, plainError, reportError, renderList, newId,
  collection: () => state.db.collection(COLLECTION),
});
const { fillEditor, closeEditor, openNote, newNote, flushSave, setSaveState, updateSaveState } = editor;

// ---- history: the commit DAG, time travel, restore ---------------------------------------

$("history-btn").addEventListener("click", async () => {
  const cur = state.current;
  if (!cur || cur.draft) { toast("This note has no history yet: type something first."); return; }
  flushSave();
  await cur.saving;
  await showHistory(cur.id);
});

async function showHistory(id) {
  $("travel").replaceChildren();
  $("history").showModal();
  await loadHistory(id, null);
}

// Deleted notes keep their history; the "Deleted" filter lists them so one can be restored.
async function loadDeleted() {
  const col = state.db.collection(COLLECTION);
  const deleted = new Map();
  let after = null;
  for (;;) {
    const page = await col.scan({ after, limit: SCAN_PAGE, includeDeleted: true });
    for (const d of page.docs) if (d._deleted) deleted.set(d._id, d);
    if (!page.next) break;
    after = page.next;
  }
  state.deleted = deleted;
  renderList();
}

$("filter").addEventListener("change", () => {
  if ($("filter").value === "deleted") loadDeleted().catch(reportError);
});

async function loadHistory(id, selected) {
  const col = state.db.collection(COLLECTION);
  const commits = await col.history(id);
  const me = state.db.info.actor;
  const fps = new Map();
  for (const c of commits) if (!fps.has(c.actor)) fps.set(c.actor, await fingerprint(c.actor));
  state.history = { id, commits, selected };
  const authors = fps.size;
  const merges = commits.filter((c) => c.parents.length > 1).length;
  const heads = new Set(commits.map((c) => c.cid));
  for (const c of commits) for (const p of c.parents) heads.delete(p);
  $("history-summary").textContent = `${commits.length} commit${commits.length === 1 ? "" : "s"} by ${authors} device${authors === 1 ? "" : "s"}`
    + (merges ? `, ${merges} merge${merges === 1 ? "" : "s"}` : "")
    + (heads.size > 1 ? `, ${heads.size} concurrent heads` : "")
    + ". Filled circles are this device; diamonds are merges.";

  const wrap = $("dag");
  wrap.replaceChildren();
  const svg = dagSvg(commits, { selected, thisActor: me });
  svg.style.setProperty("--rows", commits.length);
  const ol = document.createElement("ol");
  ol.className = "commits";
  ol.setAttribute("aria-label", "Commits, newest first");
  const ordered = [...commits].reverse();
  ordered.forEach((c, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "commit" + (c.cid === selected ? " selected" : "");
    b.style.height = `${ROW_H}px`;
    b.dataset.cid = c.cid;
    if (c.cid === selected) b.setAttribute("aria-pressed", "true");
    const sig = SIGNATURE_WORDS[c.signature.status] || [c.signature.status, ""];
    const mine = c.actor === me;
    const first = i === ordered.length - 1;
    const top = document.createElement("span");
    top.className = "c-top";
    const cidEl = document.createElement("code");
    cidEl.textContent = "…" + c.cid.slice(-10);
    cidEl.title = c.cid;
    const who = document.createElement("span");
    who.className = "c-who" + (mine ? " mine" : "");
    who.style.color = actorColor(c.actor);
    who.title = `author key fingerprint ${fps.get(c.actor)}`;
    const fp = Object.assign(document.createElement("span"), { className: "fp", textContent: fps.get(c.actor) });
    who.append(fp);
    if (mine) who.append(Object.assign(document.createElement("span"), { className: "me", textContent: " (this device)" }));
    const when = document.createElement("span");
    when.className = "c-when";
    when.textContent = timeWords(c.time);
    const sigEl = document.createElement("span");
    sigEl.className = `c-sig sig-${c.signature.status}`;
    sigEl.textContent = sig[0];
    sigEl.title = sig[1];
    top.append(sigEl, who, when, cidEl);
    const what = document.createElement("span");
    what.className = "c-what";
    what.textContent = (c.parents.length > 1 ? "merge · " : "") + describeOps(c.ops, first && c.parents.length === 0);
    b.append(top, what);
    b.setAttribute("aria-label", `Commit ${c.cid.slice(-8)} by ${mine ? "this device" : fps.get(c.actor)}, ${timeWords(c.time)}, ${sig[0]}: ${what.textContent}`);
    b.addEventListener("click", () => travel(c.cid));
    li.append(b);
    ol.append(li);
  });
  ol.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    const items = [...ol.querySelectorAll(".commit")];
    const j = items.indexOf(document.activeElement) + (ev.key === "ArrowDown" ? 1 : -1);
    if (items[j]) { items[j].focus(); ev.preventDefault(); }
  });
  wrap.append(svg, ol);
  window.__notes.historyLoaded = (window.__notes.historyLoaded || 0) + 1;
}

async function travel(cid) {
  const h = state.history;
  if (!h) return;
  const col = state.db.collection(COLLECTION);
  const old = await col.get(h.id, { at: cid });
  await loadHistory(h.id, cid);
  const btn = $("dag").querySelector(`.commit[data-cid="${CSS.escape(cid)}"]`);
  if (btn) btn.focus();
  const box = $("travel");
  box.replaceChildren();
  const head = document.createElement("h3");
  const c = h.commits.find((x) => x.cid === cid);
  head.textContent = `As of ${timeWords(c ? c.time : 0)}`;
  box.append(head);
  if (!old) {
    const p = document.createElement("p");
    p.textContent = "The note was deleted at this commit.";
    box.append(p);
    return;
  }
  const t = document.createElement("p");
  t.className = "travel-title";
  t.textContent = asText(old.title) || "Untitled";
  const body = document.createElement("pre");
  body.className = "travel-body";
  body.textContent = asText(old.body);
  const meta = document.createElement("p");
  meta.className = "muted small";
  meta.textContent = [tagsOf(old).map((x) => `#${x}`).join(" "), old.pinned ? "pinned" : "", old.done ? "done" : "", `version ${old._version}`].filter(Boolean).join(" · ");
  const restore = document.createElement("button");
  restore.type = "button";
  restore.className = "btn primary";
  restore.id = "restore";
  restore.textContent = "Restore this version";
  restore.addEventListener("click", () => restoreVersion(h.id, old));
  box.append(t, body, meta, restore);
}

async function restoreVersion(id, old) {
  // Write only what differs (a readable commit: "body …"), and remove fields the old
  // version did not have. It is a new commit: history is never rewritten.
  try {
    const col = state.db.collection(COLLECTION);
    const current = await col.get(id);
    if (!current) {
      // Deleted: the same id comes back with the old version's fields (a new commit after
      // the deletion; the history keeps both).
      const fields = {};
      for (const [k, v] of Object.entries(old)) if (!k.startsWith("_")) fields[k] = v;
      await col.create(fields, id);
      state.deleted.delete(id);
    } else {
      const fields = {};
      const unset = [];
      for (const [k, v] of Object.entries(old)) if (!k.startsWith("_") && JSON.stringify(current[k]) !== JSON.stringify(v)) fields[k] = v;
      for (const k of Object.keys(current)) if (!k.startsWith("_") && !(k in old)) unset.push(k);
      if (!Object.keys(fields).length && !unset.length) {
        toast("The note already looks exactly like this version.");
        return;
      }
      await col.patch(id, fields, { unset });
    }
    await state.db.flush();
    const d = await col.get(id);
    state.notes.set(id, d);
    if (state.current && state.current.id === id) {
      state.current.dirty.clear();
      fillEditor(d, true);
      setSaveState("saved");
      state.current.lastSave = Date.now();
    }
    renderList();
    await loadHistory(id, null);
    $("travel").replaceChildren(Object.assign(document.createElement("p"), { textContent: "Restored: the note now has the old text again, as a new commit. Nothing was erased." }));
  } catch (e) {
    reportError(e);
  }
}

// ---- space dialog: invite, export, verify --------------------------------------------

$("space-btn").addEventListener("click", async () => {
  const info = state.db.info || {};
  $("space-name-v").textContent = state.space.name || info.spaceName || "(from invite)";
  $("device-fp").textContent = info.fingerprint || "";
  $("room-id").textContent = info.room || "";
  // A member space invites one device per click (members.js); earlier spaces share a link.
  $("invite-link").value = info.spaceId ? "" : await inviteLink();
  $("copy-state").textContent = "";
  $("space").showModal();
  await renderMembers(membersCtx).catch(reportError);
});

async function inviteLink() {
  const base = `${location.origin}${location.pathname}`;
  try {
    const inv = await state.db.invite(relayURL());
    if (typeof inv === "string" && inv) return `${base}#invite=${inv}`;
  } catch (_) {
    // The runtime has no invite call: fall back to the space's own secret (same effect).
  }
  if (state.space.invite) return `${base}#invite=${state.space.invite}`;
  const q = new URLSearchParams({ space: state.space.name, passphrase: state.space.passphrase });
  return `${base}#${q}`;
}

$("copy-invite").addEventListener("click", async () => {
  const v = $("invite-link").value;
  try {
    await navigator.clipboard.writeText(v);
    $("copy-state").textContent = "Copied. Open it on the other device.";
  } catch (_) {
    $("invite-link").select();
    $("copy-state").textContent = "Select all and copy (the browser refused clipboard access).";
  }
});

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function stamp() {
  return new Date().toISOString().replace(/[:]/g, "").replace(/\..*/, "");
}

$("export-json").addEventListener("click", async () => {
  const col = state.db.collection(COLLECTION);
  await reloadAll();
  const notes = [];
  for (const d of state.notes.values()) notes.push({ ...d, _history: await col.history(d._id) });
  const out = {
    format: "ostracon-notes/v1",
    exported: new Date().toISOString(),
    space: state.space.name || state.db.info.spaceName || null,
    room: state.db.info.room,
    device: state.db.info.fingerprint,
    notes,
  };
  download(`notes-${stamp()}.json`, JSON.stringify(out, (k, v) => (typeof v === "bigint" ? v.toString() : v), 2), "application/json");
});

$("export-ndjson").addEventListener("click", async () => {
  await reloadAll();
  const lines = [...state.notes.values()].map((d) => JSON.stringify(d, (k, v) => (typeof v === "bigint" ? v.toString() : v)));
  download(`notes-${stamp()}.ndjson`, lines.join("\n") + (lines.length ? "\n" : ""), "application/x-ndjson");
});

$("verify-btn").addEventListener("click", async () => {
  show("verify");
  const bar = $("verify-progress");
  const out = $("verify-state");
  const ul = $("verify-problems");
  ul.replaceChildren();
  bar.removeAttribute("value");
  out.textContent = "Saving pending changes, then reading every block…";
  try {
    await state.db.flush();
    const envelopes = await state.db.blocksSince({});
    const r = await verifyAll(envelopes, (done, total) => {
      bar.max = total || 1;
      bar.value = done;
      out.textContent = `Checking ${done} of ${total}…`;
    });
    bar.max = 1;
    bar.value = 1;
    const words = `${r.blocks} commits by ${r.authors} device${r.authors === 1 ? "" : "s"}, ${r.seals} signed batches`;
    out.textContent = r.problems.length
      ? `Found ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"} in ${words}.`
      : `Everything checks out: ${words}; every content address and signature recomputed on this device.`
        + (r.unsealed ? ` (${r.unsealed} newest commits are not signed yet.)` : "");
    out.dataset.ok = r.problems.length ? "no" : "yes";
    for (const p of r.problems.slice(0, 50)) ul.append(Object.assign(document.createElement("li"), { textContent: p }));
    window.__notes.verify = r;
  } catch (e) {
    out.textContent = `Could not verify: ${plainError(e)}`;
    out.dataset.ok = "no";
  }
});

// Close the open space on this tab (it stays on the device); `forget` also stops opening it
// at start.
async function closeSpace(forget) {
  flushSave();
  if (state.current) await state.current.saving;
  window.__notes.ready = false;
  const db = state.db;
  state.db = null;
  state.current = null;
  state.notes = new Map();
  if (forget) saveSpace(null);
  if (db) await db.close().catch(() => {});
}

$("leave").addEventListener("click", async () => {
  $("space").close();
  await closeSpace(true);
  showJoin(null, null);
});

// An invite link opened in a tab that is already running (only the #hash changed).
window.addEventListener("hashchange", async () => {
  const link = inviteFromLocation();
  if (!link) return;
  if (state.db) await closeSpace(false);
  showJoin(link, null);
});

for (const d of document.querySelectorAll("dialog")) {
  d.addEventListener("click", (ev) => {
    if (ev.target.closest("[data-close]")) d.close();
    else if (ev.target === d) d.close(); // a click on the backdrop
  });
}
$("history").addEventListener("close", () => { state.history = null; $("travel").replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: "Choose a commit to see the note as it was then." })); });

// ---- errors --------------------------------------------------------------------------

function reportError(e) {
  console.error(e);
  toast(plainError(e));
}

// ---- join forms ------------------------------------------------------------------------

setupJoinForms((space) => openSpace(space), loadSpace);
const membersCtx = {
  db: () => state.db,
  relayURL,
  toast,
  plainError,
  legacy: () => isLegacy(state.space),
  migrate: async () => { // explicit: the old space's notes move to a new space with members
    const old = state.space;
    $("space").close();
    await closeSpace(false);
    openSpace({ kind: "migrate", name: old.name, passphrase: old.passphrase });
  },
};
setupMembers(membersCtx);

$("join-invite").addEventListener("submit", (ev) => {
  ev.preventDefault();
  let text = $("invite-text").value.trim();
  const m = /#(.*)$/.exec(text);
  if (m) {
    const h = new URLSearchParams(m[1]);
    if (h.get("space") && h.get("passphrase")) {
      showJoin({ name: h.get("space"), passphrase: h.get("passphrase") }, "That link is for an old passphrase space: move it below, on a device that has its notes.");
      return;
    }
    if (h.get("invite")) text = h.get("invite");
  }
  if (!/^ost[12]/i.test(text.replace(/\s+/g, ""))) {
    $("join-error").hidden = false;
    $("join-error").textContent = "That is not an Ostracon invite: it should contain “#invite=ost2…”.";
    return;
  }
  openSpace({ kind: "invite", invite: text.replace(/\s+/g, ""), passphrase: $("invite-pass").value || undefined });
});

// ---- lifecycle -------------------------------------------------------------------------

window.addEventListener("pagehide", () => {
  flushSave();
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") flushSave();
});

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("sw.js", { scope: "./" });
    const reg = await navigator.serviceWorker.ready;
    // The precache is complete once the worker is active (install waits for it).
    window.__notes.swReady = !!reg.active;
    navigator.serviceWorker.addEventListener("message", (ev) => {
      if (ev.data && ev.data.type === "precached") window.__notes.precached = true;
      if (ev.data && ev.data.type === "update-ready") toast("A new version of the app was downloaded: reload the page to use it.");
    });
  } catch (e) {
    console.warn("service worker not registered", e);
  }
}

function start() {
  registerServiceWorker();
  const fromLink = inviteFromLocation();
  const saved = loadSpace();
  if (fromLink && (!saved || JSON.stringify(saved) !== JSON.stringify(fromLink))) {
    showJoin(fromLink, null);
    return;
  }
  if (saved && !needsUnlock(saved)) openSpace(saved);
  else showJoin(saved, null);
}

start();
