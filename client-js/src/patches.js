// Applying Hearth's edits locally: RFC 7386 merge patches, RFC 6902 JSON Patches, and a
// change-log `op` (`{replace} | {merge} | {jsonPatch}`). The outbox shows writes made offline
// at once by applying them to the last known version, as the server will.

/** RFC 7386: `patch` merged into `target` (neither is modified). */
export function mergePatch(target, patch) {
  if (!isObject(patch)) return structuredClone(patch);
  const out = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** RFC 6902: `ops` applied to a copy of `doc`, all or none; throws on a failing op. */
export function jsonPatch(doc, ops) {
  let root = structuredClone(doc);
  for (const op of ops) {
    const path = pointer(op.path);
    switch (op.op) {
      case "add":
        root = put(root, path, structuredClone(op.value), true);
        break;
      case "remove":
        root = remove(root, path);
        break;
      case "replace":
        get(root, path);
        root = put(root, path, structuredClone(op.value), false);
        break;
      case "move": {
        const value = get(root, pointer(op.from));
        root = put(remove(root, pointer(op.from)), path, value, true);
        break;
      }
      case "copy":
        root = put(root, path, structuredClone(get(root, pointer(op.from))), true);
        break;
      case "test":
        if (JSON.stringify(canonical(get(root, path))) !== JSON.stringify(canonical(op.value))) {
          throw new Error(`test failed at ${op.path}`);
        }
        break;
      default:
        throw new Error(`unknown JSON Patch op ${op.op}`);
    }
  }
  return root;
}

/** A change-log entry's `op` applied to `userdata` (its access lists are not userdata). */
export function applyOp(userdata, op) {
  if (op.replace) return structuredClone(op.replace);
  if (op.merge) return mergePatch(userdata, op.merge);
  if (op.jsonPatch) return jsonPatch(userdata, op.jsonPatch);
  return userdata;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
}

function pointer(path) {
  if (path === "") return [];
  if (typeof path !== "string" || !path.startsWith("/")) throw new Error(`bad JSON pointer ${path}`);
  return path.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function get(root, path) {
  let node = root;
  for (const key of path) {
    if (Array.isArray(node) && /^(0|[1-9]\d*)$/.test(key) && Number(key) < node.length) node = node[Number(key)];
    else if (isObject(node) && Object.hasOwn(node, key)) node = node[key];
    else throw new Error(`no value at /${path.join("/")}`);
  }
  return node;
}

function put(root, path, value, insert) {
  if (path.length === 0) return value;
  const parent = get(root, path.slice(0, -1));
  const key = path.at(-1);
  if (Array.isArray(parent)) {
    const i = key === "-" ? parent.length : Number(key);
    if (!/^(0|[1-9]\d*|-)$/.test(key) || i > parent.length || (!insert && i >= parent.length)) {
      throw new Error(`bad array index ${key}`);
    }
    if (insert) parent.splice(i, 0, value);
    else parent[i] = value;
  } else if (isObject(parent)) {
    parent[key] = value;
  } else {
    throw new Error(`no container at /${path.slice(0, -1).join("/")}`);
  }
  return root;
}

function remove(root, path) {
  if (path.length === 0) throw new Error("cannot remove the whole document");
  get(root, path);
  const parent = get(root, path.slice(0, -1));
  const key = path.at(-1);
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else delete parent[key];
  return root;
}
