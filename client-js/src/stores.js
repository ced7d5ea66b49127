// Where the outbox keeps writes made offline and the last known version of watched
// documents: any object with async get/set/delete/keys. IndexedDB in browsers, a JSON file
// in Node, memory for tests.

/** The outbox store for the `outbox` option of `connect`, or null when it is off. */
export function resolveOutboxStore(option) {
  if (!option) return null;
  if (option === true) {
    if (globalThis.indexedDB) return indexedDbStore();
    throw new TypeError(
      'outbox: true keeps writes in IndexedDB, which this runtime lacks; in Node pass outbox: "path/to/outbox.json" or an object with async get/set/delete/keys',
    );
  }
  if (typeof option === "string") return fileStore(option);
  for (const m of ["get", "set", "delete", "keys"]) {
    if (typeof option[m] !== "function") throw new TypeError(`outbox: the store lacks ${m}()`);
  }
  return option;
}

/** A store in memory: lost with the page or process (tests, or an app that only wants
 * writes queued while the socket is down). */
export function memoryStore() {
  const map = new Map();
  return {
    get: async (k) => structuredClone(map.get(k)),
    set: async (k, v) => void map.set(k, structuredClone(v)),
    delete: async (k) => void map.delete(k),
    keys: async () => [...map.keys()],
  };
}

/** A store in IndexedDB database `name` (one object store, `kv`). */
export function indexedDbStore(name = "hearth-outbox") {
  let db = null;
  const open = () =>
    (db ??= new Promise((resolve, reject) => {
      const req = globalThis.indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("kv");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    }));
  const run = async (mode, fn) => {
    const handle = await open();
    return new Promise((resolve, reject) => {
      const tx = handle.transaction("kv", mode);
      const req = fn(tx.objectStore("kv"));
      // Resolved once the transaction is durable, not when the request is queued.
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  };
  return {
    get: (k) => run("readonly", (s) => s.get(k)),
    set: (k, v) => run("readwrite", (s) => s.put(v, k)),
    delete: (k) => run("readwrite", (s) => s.delete(k)),
    keys: () => run("readonly", (s) => s.getAllKeys()),
  };
}

/** A store in one JSON file (mode 0600), rewritten through a temporary file and a rename so
 * that a crash leaves the old contents or the new, never half of them. */
export function fileStore(path) {
  const fs = globalThis.process?.getBuiltinModule?.("node:fs");
  if (!fs) throw new TypeError("outbox: a file path works in Node (>= 20.16) only");
  let data = null;
  let queue = Promise.resolve();
  const load = () => {
    if (data) return data;
    try {
      data = JSON.parse(fs.readFileSync(path, "utf8"));
    } catch (e) {
      if (e.code !== "ENOENT") throw new Error(`outbox file ${path}: ${e.message}`);
      data = {};
    }
    return data;
  };
  const save = () => {
    const body = JSON.stringify(data);
    queue = queue.then(async () => {
      const tmp = `${path}.tmp`;
      await fs.promises.writeFile(tmp, body, { mode: 0o600 });
      await fs.promises.rename(tmp, path);
    });
    return queue;
  };
  return {
    get: async (k) => structuredClone(load()[k]),
    set: async (k, v) => {
      load()[k] = structuredClone(v);
      await save();
    },
    delete: async (k) => {
      delete load()[k];
      await save();
    },
    keys: async () => Object.keys(load()),
  };
}
