// What every screen of the dashboard shares: the admin's token, the API call, and small DOM
// and formatting helpers. Nothing here knows about a screen.

export const $ = (id) => document.getElementById(id);

const KEY = "hearth.admin.token";

/** The signed-in admin's token (sessionStorage: gone with the tab, apart from the demo's). */
export const session = {
  token: sessionStorage.getItem(KEY),
  /** Set by the shell: what a refused call does (back to the sign-in form). */
  onRefused: (_message) => {},
};

export function setToken(token) {
  session.token = token;
  if (token) sessionStorage.setItem(KEY, token);
  else sessionStorage.removeItem(KEY);
}

/** An error the API answered, with its HTTP status and wire code. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
  }
}

/** An admin API call; a 401/403 sends the admin back to sign in. */
export async function api(method, path, body, headers = {}) {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${session.token}`,
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401 || res.status === 403) {
    session.onRefused(res.status === 403 ? "This account is not an admin." : "Your session ended; sign in again.");
    throw new ApiError(res.status, { message: "not allowed" });
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** `el("td", {className: "x"}, "text", child)`: an element with properties and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** A time (Unix seconds or RFC 3339) as the browser's locale shows it; "—" for none. */
export function when(t) {
  if (t === null || t === undefined) return "—";
  return new Date(typeof t === "number" ? t * 1000 : t).toLocaleString();
}

/**
 * Downloads `url` with the token, showing progress on `bar` and `status` by the announced
 * length, then hands the bytes to the browser as `name`.
 */
export async function download(url, name, bar, status) {
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate until the length is known
  const res = await fetch(url, { headers: { Authorization: `Bearer ${session.token}` } });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  const total = Number(res.headers.get("content-length")) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    if (total) bar.value = got / total;
    status.textContent = `${bytes(got)}${total ? ` of ${bytes(total)}` : ""}`;
  }
  const link = el("a", { href: URL.createObjectURL(new Blob(chunks, { type: "application/octet-stream" })), download: name, textContent: "save again", className: "saved" });
  document.body.append(link);
  link.click();
  status.replaceChildren(`Done: ${bytes(got)}. `, link);
  return got;
}
