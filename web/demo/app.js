// Ostracon Notes: the offline-first PWA on top of the Ostracon browser runtime.
//
// Data flow: every edit goes to the engine (memory first, then flushed to IndexedDB), the
// engine's change feed drives what the list shows, and the relay status drives the sync bar.
// The tabs of this origin share one engine (the runtime's default, tabs: "share"), so every
// tab is live.

import Ostracon from "../ostracon.js";
import { createHistoryView } from "./historyview.js";
import { verifyAll } from "./verify.js";
import { $, COLLECTION, SCAN_PAGE, show, state } from "./state.js";
import { asText, renderList, tagsOf, timeWords, onOpenNote } from "./listview.js";
import { notesFirstPaint } from "./boot.js";
import { forgetFirstScreen, inviteFromLocation, loadSpace, saveSpace, startupChoice } from "./early.js";
import { createEditor } from "./editor.js";
import { isLegacy, renderMembers, savedForm, setupJoinForms, setupMembers, showUnlock, spaceOption } from "./members.js";

const KNOWN_KEY = "ostracon-notes/known-databases";
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

// ---- small helpers ----------------------------------------------------------------------

// A failure of background work that goes on is shown again after this long (ms).
const BACKGROUND_TOAST_MS = 30_000;

function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
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

function relayURL() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

async function dbNameFor(space) {
  const secret = space.invite ? `invite:${space.invite.replace(/\s+/g, "").toLowerCase()}` : `pass:${space.name}\0${space.passphrase}`;
  return `notes-${(await sha256hex(secret)).slice(0, 16)}`;
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
  // Stored notes at once from the read view (read-only until the engine is ready); for the
  // remembered space this started when the page loaded (boot.js).
  const painted = notesFirstPaint(name);
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
  // Background work failed (a full disk...): the edits stay queued and are retried; say so,
  // once per kind of failure and then at most every BACKGROUND_TOAST_MS while it goes on
  // (the engine retries every second or so, and posts each failure).
  let shown = { key: null, at: 0 };
  db.status.addEventListener("background", (ev) => {
    const last = ev.detail && ev.detail.last;
    if (!last || !window.__notes.ready) return;
    const key = `${last.where}/${last.error && last.error.name}`;
    const now = performance.now();
    if (key === shown.key && now - shown.at < BACKGROUND_TOAST_MS) return;
    shown = { key, at: now };
    toast(plainError(last.error));
  });
  // Before the space is open, failures show on the join screen instead.
  db.status.addEventListener("error", (ev) => { if (window.__notes.ready) reportError(ev.detail.error); });
  try {
    await db.ready;
  } catch (e) {
    painted.live(null);
    $("app").inert = false;
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
  // Events arrive one at a time. They are handled in batches, one batch at a time: the events
  // that arrive while a batch is read and drawn form the next one, so a burst of thousands of
  // writes costs a few reads and redraws, not one per event.
  let batch = null;
  let handling = false;
  const drain = () => {
    if (handling || !batch) return;
    const events = batch;
    batch = null;
    handling = true;
    onEvents(events).catch(reportError).finally(() => {
      handling = false;
      if (batch) setTimeout(drain, 0);
    });
  };
  db.collection(COLLECTION).subscribe((ev) => {
    if (!batch) {
      batch = [];
      if (!handling) setTimeout(drain, 0);
    }
    batch.push(ev);
  });
  // From here the list follows the engine: no more pages from the view.
  painted.live(db);
  state.live = true;
  await reloadAll();
  $("app").inert = false;
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

// ---- the editor (editor.js) ------------------------------------------------------------

const editor = createEditor({
  state, $, show, toast, timeWords, asText, tagsOf, plainError, reportError, renderList, newId,
  collection: () => state.db.collection(COLLECTION),
});
const { fillEditor, closeEditor, openNote, newNote, flushSave, updateSaveState } = editor;

// "/" focuses search; Alt+N makes a note (arrow keys in the list: listview.js).
document.addEventListener("keydown", (ev) => {
  if (!window.__notes.ready) return;
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
  if (ev.key === "/" && !typing) { $("search").focus(); ev.preventDefault(); }
  if (ev.altKey && (ev.key === "n" || ev.key === "N")) { newNote(); ev.preventDefault(); }
});

// ---- history: the commit DAG, time travel, restore (historyview.js) --------------------

const { showHistory, loadDeleted, loadHistory } = createHistoryView({ toast, reportError, editor });
onOpenNote((d) => (d._deleted ? showHistory(d._id) : openNote(d._id)));

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
  state.live = false;
  state.notes = new Map();
  if (forget) {
    saveSpace(null);
    if (db && db.info) forgetFirstScreen(db.info.name);
  }
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
  const choice = startupChoice();
  if (choice.open) openSpace(choice.open);
  else showJoin(choice.join, null);
}

start();
