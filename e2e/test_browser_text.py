"""The JS API for text fields (web/text.js) in Chromium: UTF-16 offsets, lagging copies,
cursors, change events, refused splits."""

from __future__ import annotations

import uuid

from conftest import goto_e2e


def test_text_handles_map_offsets_cursors_and_remote_edits(shared_page, e2e_url):
    goto_e2e(shared_page, e2e_url)
    out = shared_page.evaluate("""async (name) => {
      const db = await Ostracon.open({name});
      const col = db.collection('notes');
      const id = await col.create({body: 'hello world'});
      const a = await col.text(id, 'body');
      const b = await col.text(id, 'body');
      const follower = await col.text(id, 'body', {follow: true});
      const caret = await a.cursor(5);                // before " world"
      await a.insert(0, '😀 ');
      await b.insert(5, ',');                         // b's copy lags: still "hello world"
      const laggingB = b.value;
      const mapped = await b.pull([6]);               // b's caret after ","
      const changes = [];
      a.addEventListener('change', (e) => changes.push(e.detail.value));
      const at = await a.resolve(caret);
      const tail = a.value.slice(at);
      const refused = [];
      for (const f of [() => a.insert(1, 'x'), () => a.delete(0, 1), () => a.splice(0, 0, '\\uDC00')]) {
        try { await f(); refused.push('accepted'); } catch (e) { refused.push(e.name); }
      }
      const seen = new Promise((resolve) => follower.addEventListener('change', (e) => {
        if (e.detail.value.endsWith('!')) resolve(e.detail.value); }));
      await a.insert(a.value.length, '!');
      await a.commit();
      const followed = await seen;
      const doc = await col.get(id);
      const blame = await a.blame();
      for (const h of [a, b, follower]) await h.close();
      await db.close();
      return {laggingB, b: b.value, mapped, a: a.value, at, tail, changes,
              refused, followed, body: doc.body, blame: blame.map((r) => r.text).join('')};
    }""", f"text-{uuid.uuid4().hex[:10]}")
    assert out["laggingB"] == "hello, world"
    assert out["b"] == "😀 hello, world" and out["mapped"] == [len("😀 hello,".encode("utf-16-le")) // 2]
    assert out["at"] == 9 and out["tail"] == " world"        # UTF-16: the emoji counts 2
    assert out["changes"] == ["😀 hello, world"]
    assert out["refused"] == ["ValidationError"] * 3
    assert out["followed"] == out["a"] == out["body"] == out["blame"] == "😀 hello, world!"
