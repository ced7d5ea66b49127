// The demo page's service worker: keeps the page and its scripts so that the page opens
// offline too, where the client's outbox shows the edits waiting to be sent. Network first:
// online, the page is always the server's current one; the copy is only for when the
// network fails. API calls and the WebSocket are never touched.
const CACHE = "hearth-demo-v2";
const CLIENT = ["index.js", "errors.js", "outbox.js", "stores.js", "patches.js", "presence.js"].map((f) => `/client/${f}`);
const SHELL = ["/", "/app.js", "/style.css", "/hearth-client.js", ...CLIENT];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(url.pathname, copy)));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname)),
  );
});
