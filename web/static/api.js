// REST calls against this page's origin: JSON in and out, errors as exceptions.

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const message = body && typeof body.message === "string" && body.message ? body.message : `Request failed (HTTP ${status})`;
    super(message);
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }

  get code() {
    return this.body && typeof this.body.code === "string" ? this.body.code : "";
  }

  describe() {
    const fields = this.body && typeof this.body.fields === "object" && this.body.fields ? this.body.fields : null;
    const details = fields ? Object.entries(fields).map(([k, v]) => `${k}: ${v}`) : [];
    let text = details.length ? `${this.message} (${details.join("; ")})` : this.message;
    if (this.status === 429 && this.retryAfter) text += ` Try again in ${this.retryAfter} s.`;
    return text;
  }
}

export class NetworkError extends Error {}

/** The token is no longer accepted: the page signs out. */
export function isUnauthorized(err) {
  return err instanceof ApiError && err.status === 401;
}

/** The room is gone for this user: not a member any more, or never visible (404/403). */
export function isNoAccess(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 403);
}

export function describeError(err) {
  if (err instanceof ApiError) return err.describe();
  if (err instanceof NetworkError) return err.message;
  return "Something went wrong.";
}

/**
 * `api(method, path, {body, auth})`: fetch on this origin with the session's token (from
 * `getToken()`, read per call); throws ApiError (HTTP status) or NetworkError.
 */
export function createApi(getToken) {
  return async function api(method, path, { body, auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = auth ? getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (err) {
      throw new NetworkError("Cannot reach the server. Check your connection.", { cause: err });
    }
    let data = null;
    const text = await response.text().catch(() => "");
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    return data;
  };
}

/** `/rooms/<id><rest>` with the id escaped. */
export function roomPath(roomId, rest = "") {
  return `/rooms/${encodeURIComponent(roomId)}${rest}`;
}
