// The note editor of Ostracon Notes: the form that shows one note, saves it as you type and
// follows edits that arrive from other devices.
//
// The app hands in what the editor needs from it (`app`: its state, the list, messages);
// the editor returns the functions the rest of the app calls (open, close, flush, show the
// save state).

import { BodyText } from "./bodytext.js";

// An editing burst becomes one commit: it is written after this pause in typing (the engine
// is memory first, so this only bounds how many commits typing makes, not how long saving
// takes), and at most once per SAVE_MIN_INTERVAL_MS; a burst longer than SAVE_MAX_WAIT_MS is
// written in parts so a crash never loses more than that. Body edits reach the engine at
// every keystroke (bodytext.js) and the engine's own burst rule commits them at least every
// second (docs/TEXT.md); the pause here ends the burst early and flushes.
const SAVE_DEBOUNCE_MS = 1000;
const SAVE_MIN_INTERVAL_MS = 1000;
const SAVE_MAX_WAIT_MS = 5000;

const FIELDS = ["title", "body", "tags", "pinned", "done"];

export function createEditor(app) {
  const { state, $, show, toast, timeWords, asText, tagsOf, plainError, reportError, renderList, newId, collection } = app;
  // The body is a collaborative text (bodytext.js); the other fields are plain values.
  const body = new BodyText($("body"), (e) => {
    reportError(e);
    const cur = state.current;
    if (cur && !cur.draft) body.attach(collection(), cur.id).catch(reportError);
  });

  // The editor saves as you type; Enter in a field must not submit (and reload) the page.
  // A listener, not an inline handler: the app is served with a CSP that forbids inline script.
  $("editor").addEventListener("submit", (e) => e.preventDefault());

  function parseTags(text) {
    const seen = new Set();
    for (const t of text.split(",")) {
      const s = t.trim().replace(/^#/, "");
      if (s) seen.add(s.slice(0, 64));
    }
    return [...seen];
  }

  function fieldValue(f) {
    if (f === "tags") return parseTags($("tags").value);
    if (f === "pinned" || f === "done") return $(f).checked;
    return $(f).value;
  }

  // Show a document in the editor. Fields with unsaved local edits are left alone (they are
  // newer, and will win when saved); others follow the document, even while focused, so a
  // remote edit shows up live. The caret is kept where it was.
  function fillEditor(d, fresh) {
    const cur = state.current;
    for (const f of FIELDS) {
      // The body merges: remote edits show up even while the user types into it.
      if (f === "body" && !fresh && !cur.draft) { body.follow(); continue; }
      if (!fresh && (cur.dirty.has(f) || cur.inflight.has(f))) continue;
      const el = $(f);
      if (f === "pinned" || f === "done") { el.checked = !!d[f]; continue; }
      if (f === "body") {
        el.value = asText(d.body);
        // A body another device wrote as a number, map or bytes is not a text: shown, not
        // edited (a splice would be refused), rather than blanked by an empty text handle.
        if (d.body != null && typeof d.body !== "string") body.showForeign(el.value);
        else body.attach(collection(), d._id).catch(reportError);
        continue;
      }
      const v = f === "tags" ? tagsOf(d).join(", ") : asText(d[f]);
      if (f === "tags" && !fresh && parseTags(el.value).join("\0") === tagsOf(d).join("\0")) continue;
      if (el.value !== v) {
        const focused = document.activeElement === el;
        const s = el.selectionStart, e = el.selectionEnd;
        el.value = v;
        if (focused) el.setSelectionRange(Math.min(s, v.length), Math.min(e, v.length));
      }
    }
    $("note-meta").textContent = `Created ${timeWords(d._created)} · edited ${timeWords(d._updated)} · version ${d._version}`;
  }

  function openEditor() {
    show("no-selection", false);
    show("editor");
    document.body.classList.add("editing");
    resetDelete();
  }

  function closeEditor() {
    flushSave();
    state.current = null;
    body.detach().catch(() => {});
    show("editor", false);
    show("no-selection");
    document.body.classList.remove("editing");
    renderList();
  }

  function openNote(id) {
    const d = state.notes.get(id);
    if (!d) return;
    flushSave();
    state.current = { id, draft: false, dirty: new Set(), inflight: new Map(), timer: null, saving: Promise.resolve(), phase: "saved", lastSave: null };
    fillEditor(d, true);
    openEditor();
    setSaveState("saved");
    renderList();
    $("body").focus();
  }

  function newNote() {
    flushSave();
    body.detach().catch(() => {});
    // A draft until the first keystroke: empty notes are never written.
    state.current = { id: newId(), draft: true, dirty: new Set(), inflight: new Map(), timer: null, saving: Promise.resolve(), phase: "idle", lastSave: null };
    for (const f of FIELDS) {
      if (f === "pinned" || f === "done") $(f).checked = false;
      else $(f).value = "";
    }
    $("note-meta").textContent = "New note — it is saved as soon as you type.";
    openEditor();
    setSaveState("idle");
    renderList();
    $("title").focus();
  }

  function onEdit(field) {
    const cur = state.current;
    if (!cur) return;
    cur.dirty.add(field);
    setSaveState("editing");
    clearTimeout(cur.timer);
    const now = Date.now();
    if (!cur.burstStart) cur.burstStart = now;
    let wait = field === "pinned" || field === "done" ? 0 : SAVE_DEBOUNCE_MS;
    wait = Math.max(wait, (cur.lastSave || 0) + SAVE_MIN_INTERVAL_MS - now);
    wait = Math.min(wait, Math.max(0, cur.burstStart + SAVE_MAX_WAIT_MS - now));
    cur.timer = setTimeout(() => save(cur), wait);
  }

  for (const f of FIELDS) {
    $(f).addEventListener(f === "pinned" || f === "done" ? "change" : "input", () => {
      if (f === "body") body.sendInput();
      onEdit(f);
    });
  }

  function flushSave() {
    const cur = state.current;
    if (cur && cur.dirty.size) {
      clearTimeout(cur.timer);
      save(cur);
    }
  }

  // The values to write are read when the save is scheduled (the editor may show another note
  // by the time the engine gets them); saves are chained per note so they arrive in order.
  // Fields being saved count as dirty for fillEditor, so an echo of an older save never
  // overwrites newer typing.
  function save(cur) {
    cur.burstStart = 0;
    cur.lastSave = Date.now();
    const fields = {};
    let text = false; // body edits: sent as text splices already, this ends their burst
    for (const f of cur.dirty) {
      if (f === "body" && !cur.draft) text = true;
      else fields[f] = fieldValue(f);
    }
    cur.dirty.clear();
    for (const f of Object.keys(fields)) cur.inflight.set(f, (cur.inflight.get(f) || 0) + 1);
    // Run after the previous save settles either way: one save that failed (saveNow reports
    // its errors, but a fault in that reporting would reject) must not stop every later one.
    const run = () => saveNow(cur, fields, text);
    cur.saving = cur.saving.then(run, run);
    return cur.saving;
  }

  async function saveNow(cur, fields, text) {
    const col = collection();
    const counted = Object.keys(fields);
    try {
      if (!cur.draft && "body" in fields) {
        // Typed while the note was being created: the text handle carries it.
        delete fields.body;
        text = true;
      }
      if (cur.draft) {
        const doc = { title: "", body: "", tags: [], pinned: false, done: false, ...fields };
        try {
          await col.create(doc, cur.id);
        } catch (e) {
          // A re-sent create after a tab handover: the first one made it.
          if (!(e && e.name === "ConflictError" && /exists/.test(e.message))) throw e;
          await col.patch(cur.id, fields);
        }
        cur.draft = false;
        if (state.current === cur) await body.attach(col, cur.id);
      } else if (Object.keys(fields).length) {
        await col.patch(cur.id, fields);
      }
      if (text && state.current === cur && body.handle) {
        body.sendInput();
        await body.handle.commit();
      }
      await state.db.flush();
      cur.lastSave = Date.now();
      const d = await col.get(cur.id);
      if (d) state.notes.set(cur.id, d);
      if (state.current === cur) {
        if (!cur.dirty.size && cur.phase !== "error") setSaveState("saved");
        if (d) $("note-meta").textContent = `Created ${timeWords(d._created)} · edited ${timeWords(d._updated)} · version ${d._version}`;
      }
      renderList();
    } catch (e) {
      if (state.current === cur) {
        for (const f of counted) cur.dirty.add(f);
        if (text) cur.dirty.add("body");
        setSaveState("error", plainError(e));
      }
      reportError(e);
    } finally {
      for (const f of counted) {
        const n = (cur.inflight.get(f) || 1) - 1;
        if (n) cur.inflight.set(f, n); else cur.inflight.delete(f);
      }
    }
  }

  function setSaveState(phase, detail) {
    if (state.current) state.current.phase = phase;
    updateSaveState(detail);
  }

  function updateSaveState(detail) {
    const cur = state.current;
    const el = $("save-state");
    if (!cur) return;
    let phase = cur.phase;
    const s = state.sync;
    if (phase === "saved" && cur.lastSave && s.state === "online" && s.pending === 0) phase = "synced";
    el.dataset.state = phase;
    el.textContent = {
      idle: "",
      editing: "Editing…",
      saved: "Saved on this device",
      synced: "Saved and synced",
      error: `Not saved: ${detail || "see the message above"}`,
    }[phase];
  }

  $("back").addEventListener("click", () => { closeEditor(); $("new-note").focus(); });
  $("new-note").addEventListener("click", newNote);

  function resetDelete() {
    const b = $("delete-btn");
    b.textContent = "Delete";
    b.dataset.armed = "";
  }

  $("delete-btn").addEventListener("click", async () => {
    const b = $("delete-btn");
    const cur = state.current;
    if (!cur) return;
    if (!b.dataset.armed) {
      // Two steps instead of confirm(): keyboard friendly and no modal.
      b.dataset.armed = "1";
      b.textContent = "Really delete?";
      setTimeout(() => { if (b.dataset.armed) resetDelete(); }, 4000);
      return;
    }
    resetDelete();
    clearTimeout(cur.timer);
    cur.dirty.clear();
    if (!cur.draft) {
      try {
        await collection().delete(cur.id);
        await state.db.flush();
        state.notes.delete(cur.id);
      } catch (e) {
        reportError(e);
        return;
      }
    }
    closeEditor();
    toast("Note deleted. Its history is kept: other devices see the deletion.");
    $("new-note").focus();
  });

  return { fillEditor, closeEditor, openNote, newNote, flushSave, setSaveState, updateSaveState, parseTags };
}
