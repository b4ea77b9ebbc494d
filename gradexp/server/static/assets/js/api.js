// @ts-check
// The read API and the live (SSE) streams, as the pages use them.
//
// Requests ride on the browser's session cookie (same origin); a write (renaming or
// deleting runs) also sends the session's CSRF token, read from its cookie, in the header
// the server requires. A 401 means the session ended: the page goes to sign-in and comes
// back here afterwards.

export const API = "/api/v1";
export const SIGN_IN_PATH = "/login";

/**
 * The token of the share link this page was opened with (`/s/TOKEN`), else null. A shared
 * page sends it with every read (`?share=`: EventSource and <img> cannot send headers) and
 * no cookie counts for it: it shows what the link shares, whoever opens it.
 */
export const shareToken = (location.pathname.match(/^\/s\/([A-Za-z0-9_-]{40,64})\/?$/) || [])[1] || null;

/**
 * The URL of an API path (with the share token on a shared page).
 * @param {string} path
 */
export function apiUrl(path) {
  if (!shareToken) return API + path;
  return API + path + (path.includes("?") ? "&" : "?") + "share=" + encodeURIComponent(shareToken);
}

/** An API request that failed: the HTTP status (0: no answer), the server's code and message. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Where a signed-out visitor goes, coming back to this page (not embedded) afterwards.
 * `signedOut`: the session ended while the page was open (the sign-in page says so).
 * @param {{signedOut?: boolean}} [options]
 */
export function signInUrl({ signedOut = false } = {}) {
  const params = new URLSearchParams(location.search);
  params.delete("embed");
  const query = params.toString();
  const next = encodeURIComponent(location.pathname + (query ? "?" + query : "") + location.hash);
  return `${SIGN_IN_PATH}?${signedOut ? "signed_out=1&" : ""}next=${next}`;
}

let redirecting = false;

/** The window event an embedded page hears when its session ends (it cannot redirect). */
export const SIGNED_OUT_EVENT = "gradexp:signed-out";

/**
 * The session ended while the page was open (signed out, elsewhere too, or the password
 * changed): go to sign-in and come back here afterwards. Inside a notebook's iframe the
 * sign-in page cannot be shown, so the page is told instead (SIGNED_OUT_EVENT).
 */
export function signedOut() {
  if (redirecting) return;
  if (embedded) {
    window.dispatchEvent(new CustomEvent(SIGNED_OUT_EVENT));
    return;
  }
  redirecting = true;
  location.assign(signInUrl({ signedOut: true }));
}

/** Why a live stream can end for good: the credential it was opened with died. */
export const CREDENTIAL_ENDS = new Set(["key_revoked", "signed_out", "password_changed", "session_expired"]);

/** Why a live stream ends when the caller lost access to what it follows. */
export const ACCESS_REMOVED = "access_removed";

/** True inside a notebook's iframe (`?embed=1`): sign-in must happen in a new tab there,
 * because the sign-in page refuses to be framed. */
export const embedded = new URLSearchParams(location.search).get("embed") === "1" || window.top !== window;

/** The session's CSRF token (its cookie is readable by the page for exactly this). */
function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("gradexp_csrf="));
  return found ? decodeURIComponent(found.slice("gradexp_csrf=".length)) : "";
}

/**
 * GET (by default) a JSON endpoint under /api/v1; throws ApiError with the server's message.
 * With `body` (any other method), it is sent as JSON along with the CSRF header.
 * The answer is JSON as the server sends it (docs/protocol.md), so it is typed `any`.
 * @param {string} path
 * @param {{signal?: AbortSignal, method?: string, body?: unknown}} [options]
 * @returns {Promise<any>}
 */
export async function api(path, { signal, method = "GET", body: payload } = {}) {
  let resp;
  /** @type {Record<string, string>} */
  const headers = {};
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  try {
    // credentials "include" (same origin anyway) matches the shell's <link rel=preload
    // crossorigin=use-credentials>, so a preloaded read is reused instead of sent twice.
    resp = await fetch(apiUrl(path), {
      method,
      signal,
      credentials: shareToken ? "omit" : "include",
      headers,
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
  } catch (err) {
    if (err && /** @type {Error} */ (err).name === "AbortError") throw err;
    throw new ApiError(0, "network", "The server did not answer. Is `gradexp server` still running?");
  }
  if (resp.status === 401 && !redirecting && !embedded && !shareToken) {
    redirecting = true;
    location.assign(signInUrl());
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* a non-JSON body (a proxy's error page): reported below */
  }
  if (!resp.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(resp.status, err.code || "http_" + resp.status, err.message || `${resp.status} ${resp.statusText}`);
  }
  return body;
}

/**
 * Encode one path segment (run ids and names are safe, but never trust that).
 * @param {string} s
 */
export const seg = (s) => encodeURIComponent(String(s));

/**
 * A query string from an object ("?a=1&b=x,y", or ""), skipping empty values; arrays are
 * joined with commas.
 * @param {Record<string, unknown>} params
 * @returns {string}
 */
export function qs(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    out.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const s = out.toString();
  return s ? "?" + s : "";
}

/** A page that has been open this long reloads when its stream says `reset`. */
const RESET_RELOAD_AFTER_MS = 30_000;

/**
 * Follow an SSE stream: `handlers` maps event names (rows, run) to functions of the parsed
 * data. EventSource reconnects by itself and resumes with Last-Event-ID, so no row is lost
 * or repeated across a reconnect. Returns `{close()}`; `onStatus(open|reconnecting|closed)`.
 *
 * The server ends a stream with an `end` event that says why. When the credential died
 * (CREDENTIAL_ENDS) the stream stops for good and the page goes to sign-in; any other
 * reason (`too_slow`: this tab fell behind) lets EventSource reconnect and resume. A
 * `reset` event (the server could not resume from the page's last event id) reloads a page
 * open for more than 30 s.
 */
/**
 * @param {string} path
 * @param {Record<string, (data: any, lastEventId: string) => void>} handlers
 * @param {(status: "open" | "reconnecting" | "closed") => void} [onStatus]
 * @returns {{close: () => void}}
 */
export function follow(path, handlers, onStatus) {
  const source = new EventSource(apiUrl(path), { withCredentials: !shareToken });
  for (const [event, fn] of Object.entries(handlers)) {
    source.addEventListener(event, (e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      fn(data, e.lastEventId);
    });
  }
  source.addEventListener("reset", () => {
    // The server could not resume from where this page was (a big project's stream
    // resumed by another server process, or after a restart): it follows from now, so
    // what the page shows may lack rows. Reload it, unless it has just loaded (then it
    // already shows everything up to now, and a server that always said so would make
    // the page reload without end).
    if (performance.now() > RESET_RELOAD_AFTER_MS) location.reload();
  });
  source.addEventListener("end", (e) => {
    let reason = "";
    try {
      reason = String(JSON.parse(/** @type {MessageEvent} */ (e).data).reason);
    } catch {
      return;
    }
    if (reason === ACCESS_REMOVED) {
      // Removed from the team, the project made private, the share link revoked: the
      // page reloads and says the page is not there any more.
      source.close();
      if (onStatus) onStatus("closed");
      location.reload();
      return;
    }
    if (!CREDENTIAL_ENDS.has(reason)) return;
    source.close();
    if (onStatus) onStatus("closed");
    signedOut();
  });
  if (onStatus) {
    source.addEventListener("open", () => onStatus("open"));
    source.addEventListener("error", () => onStatus(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"));
  }
  return {
    close() {
      source.close();
    },
  };
}

/**
 * A write to the API (PUT, POST, DELETE) with a JSON body, signed by the session's CSRF
 * token (the script-readable `gradexp_csrf` cookie); throws ApiError like `api`.
 * @param {string} path
 * @param {string} method
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function send(path, method, body) {
  const csrf = (document.cookie.split("; ").find((c) => c.startsWith("gradexp_csrf=")) || "").slice("gradexp_csrf=".length);
  /** @type {Record<string, string>} */
  const headers = { "X-CSRF-Token": decodeURIComponent(csrf) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(API + path, { method, headers, credentials: "include", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "The server did not answer. Is `gradexp server` still running?");
  }
  const answer = await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = answer && answer.error ? answer.error : {};
    throw new ApiError(resp.status, err.code || "http_" + resp.status, err.message || `${resp.status} ${resp.statusText}`);
  }
  return answer;
}
