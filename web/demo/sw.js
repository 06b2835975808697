// The service worker of Ostracon Notes: after the first visit the app opens and works with
// the network and the server gone.
//
// What is precached: the app shell (this folder) and every file of the built bundle — the
// Pyodide core, the wheels, the custom pyodide-lock.json, the runtime's JS — as listed in
// ../build-info.json, which wasm-build/build.py writes with a sha256 per file. The cache is
// named after that file's `inputs` digest, so a rebuild gets a new cache and the old one is
// deleted once the new one is complete.
//
// Strategies (one build's files are never mixed with another's):
//   - page navigations: the cached shell; meanwhile a background check of build-info.json
//     precaches a new build into a new cache and tells the pages ("update-ready");
//   - everything else of this origin: cache first, network on a miss;
//   - the relay's HTTP endpoints (/healthz, /metrics, /v1/...) are never cached.
// Scope: /demo/. The engine's worker is started from /demo/engine-worker.js so that it is
// controlled too (its fetches of ../pyodide.asm.wasm etc. come here).

const PREFIX = "ostracon-notes-";
const SHELL = [
  "./", "index.html", "early.js", "boot.js", "state.js", "format.js", "listview.js", "firstpaint.js", "app.js",
  "remembered.js", "noterow.js", "firstscreen.js",
  "editor.js", "bodytext.js", "history.js", "historyview.js", "verify.js", "members.js", "engine-worker.js",
  "styles.css",
  "manifest.webmanifest", "icons/icon.svg", "icons/icon-192.png", "icons/icon-512.png", "icons/maskable-512.png",
];
const BUILD_INFO = new URL("../build-info.json", self.location).href;
const ROOT = new URL("../", self.location).href;
const NEVER_CACHE = [/\/healthz$/, /\/metrics(\.json)?$/, /\/v1\//, /\/graphql$/];
// Files under the bundle that pages never load: not worth precaching.
const SKIP = [/^e2e\//, /\.py\.map$/, /^demo\/dev\//, /^demo\/tools\//, /\.gz$/];

async function buildInfo() {
  const res = await fetch(BUILD_INFO, { cache: "no-store" });
  if (!res.ok) throw new Error(`build-info.json: HTTP ${res.status}`);
  return res.json();
}

function precacheList(info) {
  const urls = new Set(SHELL.map((p) => new URL(p, self.location).href));
  urls.add(BUILD_INFO);
  for (const rel of Object.keys(info.files || {})) {
    if (SKIP.some((re) => re.test(rel))) continue;
    urls.add(new URL(rel, ROOT).href);
  }
  return [...urls];
}

// Fill the cache of one build. build-info.json goes in last: a cache that has it is complete
// (an update interrupted half-way is never used).
async function precache(info) {
  const name = cacheName(info);
  const cache = await caches.open(name);
  const urls = precacheList(info).filter((u) => u !== BUILD_INFO);
  // no-store: a stale HTTP cache entry must never end up in the precache.
  await Promise.all(urls.map(async (url) => {
    if (await cache.match(url)) return;
    const res = await fetch(url, { cache: "no-store" });
    if (!res.ok) throw new Error(`precache ${url}: HTTP ${res.status}`);
    await cache.put(url, res);
  }));
  await cache.put(BUILD_INFO, new Response(JSON.stringify(info), { headers: { "Content-Type": "application/json" } }));
  return { name, count: urls.length + 1 };
}

function cacheName(info) {
  return PREFIX + String(info.inputs || "dev").slice(0, 16);
}

async function dropOthers(keep) {
  for (const k of await caches.keys()) if (k.startsWith(PREFIX) && k !== keep) await caches.delete(k);
}

// The newest complete cache (caches.keys() lists in creation order).
async function currentCache() {
  const keys = (await caches.keys()).filter((k) => k.startsWith(PREFIX)).reverse();
  for (const k of keys) {
    const c = await caches.open(k);
    if (await c.match(BUILD_INFO)) return c;
  }
  return null;
}

async function tellClients(msg) {
  for (const c of await self.clients.matchAll({ includeUncontrolled: true })) c.postMessage(msg);
}

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const done = await precache(await buildInfo());
    await dropOthers(done.name);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    await self.clients.claim();
    await tellClients({ type: "precached" });
  })());
});

// A new build on the server (same sw.js, new build-info.json): precache it in the
// background and tell the pages; the next start uses it. Until then everything comes from
// one build's cache, so a page never mixes files of two builds.
let checking = null;
function checkForUpdate() {
  if (checking) return checking;
  checking = (async () => {
    try {
      const info = await buildInfo();
      const name = cacheName(info);
      const c = await caches.open(name);
      if (await c.match(BUILD_INFO)) return;
      await precache(info);
      await dropOthers(name);
      await tellClients({ type: "update-ready" });
    } catch (_) {
      // offline or server gone: keep what we have
    } finally {
      checking = null;
    }
  })();
  return checking;
}

async function fromCache(request) {
  const cache = await currentCache();
  if (!cache) return undefined;
  return cache.match(request, { ignoreSearch: true });
}

// Navigations: the cached shell when there is one (instant, offline), and a background check
// for a new build; the network only before the first precache completed.
async function navigate(event) {
  const cached = await fromCache(new URL("index.html", self.location).href);
  if (cached) {
    event.waitUntil(checkForUpdate());
    return cached;
  }
  return fetch(event.request);
}

async function resource(request) {
  const cached = await fromCache(request);
  if (cached) return cached;
  return fetch(request);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (NEVER_CACHE.some((re) => re.test(url.pathname))) return;
  if (request.mode === "navigate" && url.pathname.startsWith(new URL("./", self.location).pathname)) {
    event.respondWith(navigate(event));
    return;
  }
  event.respondWith(resource(request));
});
