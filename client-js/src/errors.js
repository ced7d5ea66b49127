// The one error type the client throws.

/** An error from the server (`code` as in PROTOCOL.md) or from the client itself
 * (`timeout`, `disconnected`, `closed`, `conflict`). */
export class HearthError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "HearthError";
    this.code = code;
    if (extra.version !== undefined) this.version = extra.version;
    if (extra.target !== undefined) this.target = extra.target;
    if (extra.detail !== undefined) this.detail = extra.detail;
    if (extra.retryAfter !== undefined) this.retryAfter = extra.retryAfter;
    if (extra.users !== undefined) this.users = extra.users;
  }
}
