// Types for hearth-client. Codes and frames are described in Hearth's PROTOCOL.md.

export type ErrorCode =
  | "bad_request"
  | "auth_required"
  | "invalid_token"
  | "invalid_credentials"
  | "username_taken"
  | "unknown_users"
  | "method_not_allowed"
  | "unauthorized"
  | "version_mismatch"
  | "too_large"
  | "quota_exceeded"
  | "too_many_watches"
  | "too_many_connections"
  | "rate_limited"
  | "forbidden"
  | "not_found"
  | "already_exists"
  | "too_many_documents"
  | "account_full"
  | "unavailable"
  | "internal"
  // raised by the client itself:
  | "timeout"
  | "disconnected"
  | "closed"
  | "conflict";

export class HearthError extends Error {
  readonly code: ErrorCode | string;
  /** The current version, with `version_mismatch`. */
  readonly version?: number;
  /** The document concerned, on errors that end a watch. */
  readonly target?: string;
  /** Why, e.g. "access revoked" or "token revoked". */
  readonly detail?: string;
  /** Seconds to wait, with `rate_limited`. */
  readonly retryAfter?: number;
  /** With `unknown_users`: the names that have no account. */
  readonly users?: string[];
}

export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };
export type Userdata = { [key: string]: JSONValue };

export interface Metadata {
  username: string;
  /** A named document's name (absent for the account's default document). */
  name?: string;
  /** A named document's life: new at every `create` of the name. */
  incarnation?: string;
  version: number;
  collaborators: string[];
  readers: string[];
  createdAt: string;
  lastUpdate: { at: string; by: string };
}

export interface Document {
  metadata: Metadata;
  userdata: Userdata;
}

export interface Op {
  replace?: Userdata;
  merge?: Userdata;
  jsonPatch?: JSONValue[];
  collaborators?: string[];
  readers?: string[];
}

/** One event of a stream. */
export interface StreamEvent {
  seq: number;
  /** SHA-256 (hex) of the event's canonical JSON and its sequence number. */
  id: string;
  at: string;
  by: string;
  event: JSONValue;
}

export interface Change {
  username: string;
  /** A named document's name. */
  name?: string;
  version: number;
  /** The resulting document (absent in `mode: "ops"`). */
  data?: Document;
  /** What this version did (absent on snapshots and resyncs, and with `fields`). */
  op?: Op;
  at?: string;
  by?: string;
  /** The first call of a watch: the state it starts from. */
  snapshot?: true;
  /** Versions before this one were skipped; `data` is the newest state. */
  resync?: true;
  /** With an outbox: `data` includes writes not sent yet (`version` is still the server's). */
  pending?: true;
  /** With an outbox: shown from what this client knows, while disconnected. */
  offline?: true;
  /** With an outbox: delivered because of this client's own queued write, not a version. */
  local?: true;
}

export type Patch = boolean | "replace" | "merge" | "json-patch";

export interface Options {
  /** A token from an earlier signup or login; used to sign in on every (re)connect. */
  token?: string;
  /** WebSocket constructor, for Node < 22 (e.g. `import WebSocket from "ws"`). */
  WebSocket?: unknown;
  /** Milliseconds before a request is rejected with `timeout` (default 10000). */
  requestTimeout?: number;
  /** Backoff in ms (default {min: 250, max: 10000, factor: 2}), or false to not reconnect. */
  reconnect?: { min: number; max: number; factor: number } | false;
  /** Keep the token in localStorage (true, browsers only: Node throws), in a JSON file
   * (a path, Node only) or in any Storage-like object. */
  persist?: boolean | string | Pick<Storage, "getItem" | "setItem" | "removeItem">;
  storageKey?: string;
  /** Retries of `transact` on version mismatch (default 20). */
  transactRetries?: number;
  /** Renew the token when this share of its lifetime is left (default 0.2), or false. */
  refreshBefore?: number | false;
  /** Keep writes made while disconnected and send them, exactly once, when connected (see
   * the README, "Offline first"): true (IndexedDB, browsers), a file path (Node), or any
   * `OutboxStore`. Off by default: the client then refuses writes it cannot send. */
  outbox?: boolean | string | OutboxStore;
  /** With an outbox: settles a whole replacement (`update` with `patch` false, or a
   * `transact` from an earlier run of the app) made on a version someone else has since
   * replaced. Returns the userdata to write on top of `server`, or null/undefined to keep
   * the server's (the default, reported as a `conflict` event). */
  onConflict?: (conflict: {
    target: string;
    opId: string;
    local: Userdata;
    server: { version: number; userdata: Userdata };
  }) => Userdata | null | undefined | Promise<Userdata | null | undefined>;
}

/** Where an outbox keeps queued writes and the last known documents. */
export interface OutboxStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  keys(): Promise<string[]>;
}

/** A write waiting in the outbox. */
export interface PendingOp {
  opId: string;
  kind: "update" | "share" | "transact";
  target: string;
  /** When it was made (ISO 8601). */
  at: string;
}

/** A queued write given up: someone else's version came first and it could not be rebased
 * (a replacement the app did not settle, a JSON Patch that no longer applies). */
export interface Conflict {
  target: string;
  opId: string;
  kind: PendingOp["kind"];
  local: unknown;
  server?: { version: number; userdata: Userdata };
  error: HearthError;
}

/** One person present on a document. */
export interface Present {
  username: string;
  /** Their sockets on the document, on every node. */
  connections: number;
  /** What they set last (≤ 1 KiB of JSON). */
  state: JSONValue;
  /** When their first connection arrived (ISO 8601). */
  since: string;
}

/** This client's presence on one document (`hearth.presence(…)`). */
export interface PresenceHandle {
  readonly target: string;
  /** Who is present, longest there first. */
  readonly list: Present[];
  /** Resolves once announced (and the first list is in). */
  readonly ready: Promise<void>;
  on(event: "change", fn: (list: Present[]) => void): () => void;
  /** A new state for this client (10 changes a second at most). */
  set(state: JSONValue): Promise<void>;
  /** Not present any more; stops listening. */
  leave(): Promise<void>;
}

export function memoryStore(): OutboxStore;
export function indexedDbStore(name?: string): OutboxStore;
export function fileStore(path: string): OutboxStore;

export interface WatchOptions {
  /** Dotted paths into userdata; the watch then sees only those, in the same shape. */
  fields?: string[];
  /** Resume after this version: missed versions are replayed first. */
  since?: number;
  /** With `since` on a named document: the incarnation `since` counts in (else a resync). */
  incarnation?: string;
  /** "full" (default): op and resulting data; "ops": only the op. */
  mode?: "full" | "ops";
  /** Called when the server ends this watch (access revoked) or refuses it. */
  onError?: (error: HearthError) => void;
}

export interface Unwatch {
  (): void;
  /** Resolves with the server's first reply; rejects if the watch is refused. */
  ready: Promise<unknown>;
}

export interface Auth {
  username: string;
  token: string;
}

export interface Fetched {
  username: string;
  name?: string;
  version: number;
  data: Document;
}

/** One of your named documents, as `list` shows it. */
/** One of your named documents in `list`: its metadata, as `fetch` shows it, and its size. */
export interface Listed extends Metadata {
  name: string;
  incarnation: string;
  /** Serialized size in bytes. */
  size: number;
}

/** A document someone shares with you (`name` absent: their default document). */
export interface SharedWithMe {
  owner: string;
  name?: string;
  role: "read" | "write";
  version: number;
  lastUpdate: { at: string; by: string };
}

/** A `shared` / `unshared` event (`role` only on `shared`). */
export interface ShareEvent {
  owner: string;
  name?: string;
  role?: "read" | "write";
}

/** A named document's handle: the client's methods with the target filled in. */
export interface DocHandle {
  readonly target: string;
  fetch(fields?: string[]): Promise<Fetched>;
  update(data: Userdata | JSONValue[], version: number, patch?: Patch): Promise<number>;
  transact(fn: (userdata: Userdata) => Userdata | Promise<Userdata>): Promise<{ version: number; userdata: Userdata }>;
  share(access: { collaborators?: string[]; readers?: string[] }, version: number): Promise<number>;
  watch(options: WatchOptions | undefined, onChange: (change: Change) => void): Unwatch;
  delete(): Promise<void>;
}

export type EventName = "connected" | "disconnected" | "auth" | "error" | "shared" | "unshared" | "pending" | "synced" | "conflict";

export class Hearth {
  readonly url: string;
  token: string | null;
  username: string | null;
  connected: boolean;
  ready: boolean;
  constructor(url: string, options?: Options);
  on(event: "auth", fn: (auth: Auth | null) => void): () => void;
  on(event: "error", fn: (error: HearthError) => void): () => void;
  on(event: "connected" | "disconnected", fn: () => void): () => void;
  /** A document was shared with you (or your role changed), or no longer is. */
  on(event: "shared" | "unshared", fn: (event: ShareEvent) => void): () => void;
  /** With an outbox: the writes waiting changed. */
  on(event: "pending", fn: (pending: { count: number; ops: PendingOp[] }) => void): () => void;
  /** With an outbox: every waiting write was sent (`sent` of them). */
  on(event: "synced", fn: (event: { sent: number }) => void): () => void;
  /** With an outbox: a queued write was given up (its promise rejects too). */
  on(event: "conflict", fn: (conflict: Conflict) => void): () => void;
  /** Presence on `target` (yours when undefined), announcing `state` (null: only listen);
   * watches the document if the app does not, and announces again after a reconnect. */
  presence(target?: string, state?: JSONValue | null): PresenceHandle;
  /** With an outbox: the writes not sent yet. */
  readonly pending: { count: number; ops: PendingOp[] };
  /** `doc("groceries")` (yours) or `doc("bob/groceries")`. */
  doc(name: string): DocHandle;
  create(
    name: string,
    init?: { userdata?: Userdata; collaborators?: string[]; readers?: string[] },
  ): Promise<{ username: string; name: string; version: number; data: Document }>;
  /** Deletes a named document of yours. */
  deleteDoc(name: string): Promise<void>;
  list(page?: { after?: string; sharedAfter?: string; limit?: number }): Promise<{
    documents: Listed[];
    shared: SharedWithMe[];
    next?: string;
    sharedNext?: string;
  }>;
  off(event: EventName, fn: (...args: any[]) => void): void;
  signup(): Promise<Auth>;
  signup(username: string, password: string): Promise<Auth>;
  login(username: string, password: string): Promise<Auth>;
  auth(token: string): Promise<Auth>;
  logout(): Promise<void>;
  /** A new token for this session (done by itself before expiry; see `refreshBefore`). */
  refresh(): Promise<Auth>;
  /** Changes the password; other sessions end. Resolves to how many ended. */
  changePassword(oldPassword: string | undefined, newPassword: string): Promise<number>;
  /** Deletes the account and everything it owns; the client is signed out. */
  deleteAccount(password?: string): Promise<{ sessions: number; blobs: number; unshared: number }>;
  /** Everything the account holds (document, change log, sessions, blobs). */
  exportData(): Promise<Record<string, unknown>>;
  fetch(target?: string, fields?: string[]): Promise<Fetched>;
  fetch(fields: string[]): Promise<Fetched>;
  update(data: Userdata | JSONValue[], version: number, patch?: Patch): Promise<number>;
  update(target: string | undefined, data: Userdata | JSONValue[], version: number, patch?: Patch): Promise<number>;
  share(access: { collaborators?: string[]; readers?: string[] }, version: number): Promise<number>;
  share(target: string, access: { collaborators?: string[]; readers?: string[] }, version: number): Promise<number>;
  transact(fn: (userdata: Userdata) => Userdata | Promise<Userdata>): Promise<{ version: number; userdata: Userdata }>;
  transact(
    target: string | undefined,
    fn: (userdata: Userdata) => Userdata | Promise<Userdata>,
  ): Promise<{ version: number; userdata: Userdata }>;
  /** Appends an event to a stream (`"activity"`: yours, created by your first append; or
   * `"ann/activity"`). `opId` makes a retry safe. */
  append(stream: string, event: JSONValue, options?: { opId?: string }): Promise<{ seq: number; id: string }>;
  /** A stream's events after `from` (a sequence number or event id) up to `to`. */
  read(
    stream: string,
    range?: { from?: number | string; to?: number | string; limit?: number },
  ): Promise<{ events: StreamEvent[]; seq: number; oldest?: number; next?: number }>;
  /** Each event of a stream as it commits, in order, once each, across reconnects; with
   * `from`, the events after that sequence number first (0: from the first). */
  follow(stream: string, onEvent: (event: StreamEvent) => void, options?: { from?: number }): Unwatch;
  /** The server's HTTP base URL, derived from the WebSocket URL. */
  readonly httpBase: string;
  /** Uploads a content-addressed blob (HTTP PUT /v1/blobs). */
  putBlob(
    data: Blob | ArrayBuffer | ArrayBufferView | string,
    contentType?: string,
  ): Promise<{ sha256: string; size: number; contentType: string }>;
  /** Downloads a blob; `doc` names a readable document that mentions it. */
  getBlob(sha256: string, options?: { doc?: string }): Promise<Blob>;
  /** Drops your reference to a blob. */
  deleteBlob(sha256: string): Promise<void>;
  watch(onChange: (change: Change) => void): Unwatch;
  watch(options: WatchOptions, onChange: (change: Change) => void): Unwatch;
  watch(target: string | undefined, options: WatchOptions, onChange: (change: Change) => void): Unwatch;
  watch(target: string, onChange: (change: Change) => void): Unwatch;
  close(): void;
}

export function connect(url: string, options?: Options): Hearth;
