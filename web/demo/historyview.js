// Ostracon Notes: a note's history — the commit DAG (history.js draws it), time travel to any
// commit, restoring an old version (also of a deleted note, as a new commit), and the
// "Deleted" filter's list of deleted notes.
//
// `app` hands in messages and the editor ({fillEditor, setSaveState, flushSave}); the view
// returns the functions the rest of the app calls.

import { dagSvg, describeOps, fingerprint, actorColor, SIGNATURE_WORDS, ROW_H } from "./history.js";
import { asText, renderList, tagsOf, timeWords } from "./listview.js";
import { $, COLLECTION, SCAN_PAGE, state } from "./state.js";

export function createHistoryView(app) {
  const { toast, reportError, editor } = app;
  const { fillEditor, setSaveState, flushSave } = editor;

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

  $("history").addEventListener("close", () => {
    state.history = null;
    $("travel").replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: "Choose a commit to see the note as it was then." }));
  });

  return { showHistory, loadDeleted, loadHistory };
}
