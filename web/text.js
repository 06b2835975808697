// Collaborative text fields in the browser: `await collection.text(id, field)` → TextHandle.
//
//   const body = await notes.text(id, "body");
//   body.insert(body.value.length, " more");   // applied to body.value at once
//   body.splice(0, 4, "Note");                  // delete 4 UTF-16 units at 0, insert "Note"
//   const caret = await body.cursor(3);         // follows local and remote edits
//   body.addEventListener("change", (ev) => render(ev.detail.value));
//   await body.pull();                          // take in remote edits (automatic with {follow: true})
//   await body.resolve(caret);                  // → its UTF-16 offset in body.value
//
// Positions. JavaScript strings count UTF-16 code units; the engine counts Unicode code
// points (docs/TEXT.md). Every offset this API takes or returns is a UTF-16 offset into
// `value`, converted at this boundary. An offset between the two halves of a surrogate pair
// (an emoji, say) is refused with ValidationError, and so is inserted text holding a lone
// surrogate: a character is never split. `textDiff` snaps its edit to code point boundaries.
//
// The handle keeps its own copy (`value`), so reading and typing never wait for the worker.
// Edits are sent in order with positions in that copy; the engine maps them to the live text
// by character id (py/ostracon/db/textmirror.py), so they land where the user made them even
// when remote edits arrived meanwhile. `pull()` brings the copy up to date: the live text
// replaces it only if no local edit was sent during the round trip (otherwise it answers
// null and the next pull does it), so the copy never loses a keystroke.

export function validationError(message) {
  return Object.assign(new Error(message), { name: "ValidationError", names: ["ValidationError", "OstraconError"] });
}

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// Code points before UTF-16 offset `u16` of `s`; ValidationError inside a pair or out of range.
export function codePointOffset(s, u16) {
  if (!Number.isInteger(u16) || u16 < 0 || u16 > s.length) throw validationError(`offset ${u16} outside 0..${s.length}`);
  if (u16 > 0 && u16 < s.length && isHigh(s.charCodeAt(u16 - 1)) && isLow(s.charCodeAt(u16))) {
    throw validationError(`offset ${u16} splits a surrogate pair`);
  }
  let cp = 0;
  for (let i = 0; i < u16; i++) {
    if (!(isLow(s.charCodeAt(i)) && i > 0 && isHigh(s.charCodeAt(i - 1)))) cp++;
  }
  return cp;
}

// UTF-16 offset of code point `cp` of `s` (clamped to the end).
export function utf16Offset(s, cp) {
  let i = 0;
  for (let k = 0; k < cp && i < s.length; k++) i += isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
  return i;
}

// The one splice that turns `a` into `b`: {pos, del, ins} (UTF-16), from the common prefix
// and suffix, never splitting a surrogate pair; null if equal.
export function textDiff(a, b) {
  if (a === b) return null;
  const n = Math.min(a.length, b.length);
  let p = 0;
  while (p < n && a.charCodeAt(p) === b.charCodeAt(p)) p++;
  if (p > 0 && isHigh(a.charCodeAt(p - 1))) p--;
  let s = 0;
  while (s < n - p && a.charCodeAt(a.length - 1 - s) === b.charCodeAt(b.length - 1 - s)) s++;
  if (s > 0 && isLow(a.charCodeAt(a.length - s))) s--;
  return { pos: p, del: a.length - p - s, ins: b.slice(p, b.length - s) };
}

export class TextHandle extends EventTarget {
  constructor(collection, id, field) {
    super();
    this.collection = collection;
    this.id = id;
    this.field = field;
    this._db = collection.db;
    this._hid = null;
    this._value = "";
    this._edits = 0; // local edits sent so far (a pull answered across one is not taken)
    this._off = null;
  }

  async _open() {
    const r = await this._db._call("textOpen", this.collection.name, this.id, this.field);
    this._hid = r.hid;
    return r.text;
  }

  // A call on the worker's handle; a handle the worker no longer has (another tab took over
  // the engine, or it closed the oldest) is opened again and the copy's difference re-sent.
  async _send(method, ...args) {
    try {
      return await this._db._call(method, this._hid, ...args);
    } catch (e) {
      if (!(e && e.name === "NotFoundError" && /text handle/.test(e.message))) throw e;
      const live = await this._open();
      const d = textDiff(live, this._value);
      if (d) {
        await this._db._call("textSplice", this._hid, codePointOffset(live, d.pos),
          codePointOffset(live, d.pos + d.del) - codePointOffset(live, d.pos), d.ins);
      }
      if (method === "textSplice") return null; // the diff carried it
      return this._db._call(method, this._hid, ...args);
    }
  }

  get value() { return this._value; }
  toString() { return this._value; }
  get length() { return this._value.length; }

  // Delete `n` UTF-16 units at `pos`, insert `text` there. `value` changes at once; the
  // Promise resolves when the engine has applied the edit.
  splice(pos, n, text = "") {
    const v = this._value;
    if (typeof text !== "string") return Promise.reject(validationError("text must be a string"));
    if (LONE_SURROGATE.test(text)) return Promise.reject(validationError("text contains a lone surrogate"));
    let cp, cpEnd;
    try {
      cp = codePointOffset(v, pos);
      cpEnd = codePointOffset(v, pos + n);
    } catch (e) {
      return Promise.reject(e);
    }
    if (n === 0 && !text) return Promise.resolve();
    this._value = v.slice(0, pos) + text + v.slice(pos + n);
    this._edits++;
    return this._send("textSplice", cp, cpEnd - cp, text);
  }

  insert(pos, text) { return this.splice(pos, 0, text); }
  delete(pos, n) { return this.splice(pos, n, ""); }

  // Take the live text as the copy. `positions` (UTF-16 offsets in the copy: a caret, a
  // selection) come back mapped into the new value; null when a local edit crossed the round
  // trip (nothing changed: pull again later). Fires "change" {value, remote} if it changed.
  async pull(positions = []) {
    const sent = this._edits;
    const before = this._value;
    const cps = positions.map((p) => codePointOffset(before, p));
    const r = await this._send("textPull", cps);
    return this._take(r, sent, before);
  }

  _take(r, sent, before) {
    if (this._edits !== sent || this._value !== before) return null;
    this._send("textAdopt", r.token).catch(() => {});
    this._value = r.text;
    if (r.text !== before) this.dispatchEvent(new CustomEvent("change", { detail: { value: r.text, remote: true } }));
    return r.positions.map((p) => utf16Offset(r.text, p));
  }

  // A cursor before the character at `pos` (the end: the text's end); survives edits.
  cursor(pos) {
    try {
      return this._send("textCursor", codePointOffset(this._value, pos));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // Where `cursor` is now, as a UTF-16 offset into `value` (pulls first; retries while
  // local edits cross the round trip).
  async resolve(cursor) {
    for (;;) {
      const sent = this._edits;
      const before = this._value;
      const r = await this._send("textResolve", [cursor]);
      const out = this._take(r, sent, before);
      if (out) return out[0];
    }
  }

  // [{actor, text}] in document order: who wrote which characters.
  blame() { return this._send("textBlame"); }
  // End the editing burst now (docs/TEXT.md): resolves to the commit CID or null.
  commit() { return this._send("textCommit"); }

  // Follow remote edits: pull whenever the document changes (fires "change").
  follow() {
    if (this._off) return;
    this._off = this.collection.subscribe((ev) => {
      if (ev.id === this.id || ev.kind === "overflow") this.pull().catch(() => {});
    });
  }

  async close() {
    if (this._off) { const off = this._off; this._off = null; await off(); }
    if (this._hid != null) await this._db._call("textClose", this._hid).catch(() => {});
    this._hid = null;
  }
}

// collection.text(id, field, {follow}) → TextHandle (opened).
export async function openText(collection, id, field, opts = {}) {
  const h = new TextHandle(collection, id, field);
  h._value = await h._open();
  if (opts.follow) h.follow();
  return h;
}
