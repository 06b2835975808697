// The note body as a collaborative text: the textarea bound to a TextHandle (../text.js).
//
// Typing: every input event sends the one splice that turns the handle's copy into the
// textarea's value (textDiff: common prefix and suffix, never splitting a surrogate pair), so
// the engine merges character edits instead of replacing the body. The engine groups them into
// one commit per editing burst (docs/TEXT.md); the editor ends the burst and flushes when the
// user pauses (editor.js).
//
// Remote edits: `follow()` pulls the live text with the caret and selection mapped through
// character ids, so both stay next to the characters the user was typing at. A pull that a
// keystroke crossed is not taken (the handle answers null); it is tried again shortly.
//
// Old notes whose body is a plain string become texts at the first edit; the string becomes
// the text's initial content once, the same way on every device (docs/TEXT.md, migration).

import { textDiff } from "../ostracon.js";

// Pause before taking in remote edits again after a keystroke crossed a pull.
const PULL_RETRY_MS = 150;

export class BodyText {
  constructor(el, onError) {
    this.el = el;
    this.onError = onError;
    this.handle = null;
    this.timer = null;
    this.attaching = null;
  }

  // Bind the textarea to the body of note `id` and show its text.
  async attach(collection, id) {
    await this.detach();
    const el = this.el;
    el.title = "";
    el.readOnly = true; // a keystroke now would have no copy to be diffed against
    try {
      const h = await collection.text(id, "body");
      this.handle = h;
      if (el.value !== h.value) {
        const s = el.selectionStart, e = el.selectionEnd;
        el.value = h.value;
        el.setSelectionRange(Math.min(s, h.value.length), Math.min(e, h.value.length));
      }
    } finally {
      el.readOnly = false;
    }
  }

  // Show a body value that is not text (from a peer that wrote a number, map or bytes),
  // read-only: there is no text to splice into.
  showForeign(shown) {
    this.detach().catch(this.onError);
    this.el.value = shown;
    this.el.readOnly = true;
    this.el.title = "This body was written by another device as a value that is not text; it is shown read-only.";
  }

  async detach() {
    clearTimeout(this.timer);
    const h = this.handle;
    this.handle = null;
    if (h) await h.close();
  }

  // Send what the user changed since the last call; true if there was something.
  sendInput() {
    const h = this.handle;
    if (!h) return false;
    const d = textDiff(h.value, this.el.value);
    if (!d) return false;
    h.splice(d.pos, d.del, d.ins).catch((e) => this.onError(e));
    return true;
  }

  // Take in remote edits, keeping the caret and the selection where the user had them.
  async follow() {
    const h = this.handle;
    if (!h) return;
    clearTimeout(this.timer);
    this.sendInput();
    const el = this.el;
    const dir = el.selectionDirection;
    let out;
    try {
      out = await h.pull([el.selectionStart, el.selectionEnd]);
    } catch (e) {
      this.onError(e);
      return;
    }
    if (h !== this.handle) return;
    if (!out) {
      this.timer = setTimeout(() => this.follow(), PULL_RETRY_MS);
      return;
    }
    if (el.value !== h.value) {
      const focused = document.activeElement === el;
      el.value = h.value;
      if (focused) el.setSelectionRange(out[0], out[1], dir);
    }
  }
}
