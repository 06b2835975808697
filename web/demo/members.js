// Ostracon Notes: spaces with members — what the app asks the runtime to open, and the
// members section of the space dialog (list with roles, invite a device, remove a member,
// move an earlier passphrase space).
//
// A space descriptor is what the app remembers (localStorage) and turns into the `space`
// option of Ostracon.open (web/ostracon.js):
//   {kind: "create", db, name, passphrase?}   a new random space, this device its admin
//   {kind: "invite", invite, passphrase?}      join the space of an ost2 invite
//   {kind: "migrate", name, passphrase, lock?} move an earlier passphrase space (explicit)
//   {kind: "kept", db, name, locked}           the space this database keeps (reopening)
//   {name, passphrase}                         an earlier passphrase space, remembered from an
//                                              earlier version of the app: it keeps opening
//                                              until the user moves it
// The passphrase of a new space only locks this device's copy (PBKDF2 600k in WebCrypto,
// docs/CRYPTO.md "Passphrases"); it is never remembered, so a locked space asks for it.

const $ = (id) => document.getElementById(id);

// A name for the IndexedDB database of a new space: random, so two spaces never share one.
export function newDbName() {
  const rnd = Array.from(crypto.getRandomValues(new Uint8Array(12)), (x) => x.toString(16).padStart(2, "0")).join("");
  return `notes-${rnd}`;
}

export function isLegacy(space) {
  return !!space && !space.kind && !space.invite && typeof space.passphrase === "string";
}

// The `space` option of Ostracon.open for a descriptor.
export function spaceOption(space) {
  const lock = (p) => (p ? { passphrase: p } : {});
  switch (space.kind) {
    case "create": return { create: true, name: space.name, ...lock(space.passphrase) };
    case "invite": return { invite: space.invite, ...lock(space.passphrase) };
    case "migrate": return { migrate: { passphrase: space.passphrase, name: space.name }, ...lock(space.lock) };
    case "kept": return lock(space.passphrase);
    default:
      if (space.invite) return { invite: space.invite };
      return { passphrase: space.passphrase, name: space.name };
  }
}

// What to remember once `space` opened as database `db`: member spaces reopen from the
// database itself, never with a remembered passphrase or invite.
export function savedForm(space, db, info) {
  if (isLegacy(space) || (!space.kind && space.invite && !(info && info.spaceId))) return space;
  const locked = space.kind === "kept" ? !!space.locked : !!(space.kind === "migrate" ? space.lock : space.passphrase);
  return { kind: "kept", db, name: (info && info.spaceName) || space.name || "", locked };
}

// ---- the join screen's extra forms -------------------------------------------------------

export function showUnlock(space) {
  $("unlock-space").hidden = !space;
  if (space) {
    $("unlock-name").textContent = space.name || "this space";
    $("unlock-pass").value = "";
    $("unlock-pass").focus();
  }
}

// Wires the create / migrate / unlock forms; `open(descriptor)` opens a space, `saved()` is
// the remembered descriptor.
export function setupJoinForms(open, saved) {
  $("join-pass").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("space-name").value.trim();
    const passphrase = $("space-pass").value;
    if (!name || (passphrase && passphrase.length < 8)) return;
    open({ kind: "create", db: newDbName(), name, passphrase: passphrase || undefined });
  });
  $("join-migrate").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("old-name").value.trim();
    const passphrase = $("old-pass").value;
    if (!name || !passphrase) return;
    open({ kind: "migrate", name, passphrase });
  });
  $("unlock-space").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const space = saved();
    if (space) open({ ...space, passphrase: $("unlock-pass").value });
  });
}

// ---- the members section of the space dialog -------------------------------------------

const ROLE_WORDS = { admin: "admin (invites and removes)", writer: "writer", reader: "reader (cannot write)" };

function item(m, canRemove, onRemove) {
  const li = document.createElement("li");
  li.className = "member";
  li.dataset.actor = m.actor;
  li.dataset.role = m.role;
  const who = Object.assign(document.createElement("code"), { textContent: m.fingerprint });
  const role = Object.assign(document.createElement("span"), { className: "member-role", textContent: ROLE_WORDS[m.role] || m.role });
  li.append(who, role);
  if (m.me) li.append(Object.assign(document.createElement("span"), { className: "muted small", textContent: "this device" }));
  if (canRemove && !m.me) {
    const b = Object.assign(document.createElement("button"), { type: "button", className: "btn danger member-remove", textContent: "Remove" });
    b.setAttribute("aria-label", `Remove device ${m.fingerprint}`);
    b.addEventListener("click", () => {
      // Two clicks: removing rotates the space key for everyone and cannot be undone.
      if (b.dataset.armed !== "1") {
        b.dataset.armed = "1";
        b.textContent = "Remove for good?";
        return;
      }
      onRemove(m);
    });
    li.append(b);
  }
  return li;
}

// Renders the section for the open database; `ctx` = {db, relayURL, toast, plainError, migrate}.
export async function renderMembers(ctx) {
  const db = ctx.db();
  const info = await db.refreshInfo();
  const member = !!info.spaceId;
  $("members-sec").hidden = !member;
  $("migrate-sec").hidden = member || !ctx.legacy();
  $("member-removed").hidden = !info.removed;
  if (!member) return info;
  const rows = await db.members();
  const admin = info.role === "admin" && !info.removed;
  $("member-list").replaceChildren(...rows.map((m) => item(m, admin, (row) => removeMember(ctx, row))));
  $("invite-controls").hidden = !admin;
  $("member-note").textContent = admin ? "" : info.removed
    ? "" : "Only an admin of this space can invite or remove devices.";
  window.__notes.members = rows;
  return info;
}

async function removeMember(ctx, m) {
  try {
    await ctx.db().remove(m.actor);
    ctx.toast(`Removed ${m.fingerprint}. The space key changed: that device cannot read anything new.`);
  } catch (e) {
    ctx.toast(ctx.plainError(e));
  }
  await renderMembers(ctx);
}

export function setupMembers(ctx) {
  $("invite-btn").addEventListener("click", async () => {
    const role = $("invite-role").value;
    try {
      const inv = await ctx.db().invite(ctx.relayURL(), { role });
      $("invite-link").value = `${location.origin}${location.pathname}#invite=${inv}`;
      $("copy-state").textContent = `An invite for one ${role} device. Open it on that device.`;
    } catch (e) {
      $("copy-state").textContent = ctx.plainError(e);
    }
  });
  $("migrate-btn").addEventListener("click", () => ctx.migrate());
}
