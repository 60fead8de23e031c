// The one way pages talk to the server: JSON in and out, the CSRF header on unsafe methods,
// the API's error schema ({"error": {"code", "message"}}) turned into a readable ApiError,
// 401 handed to the app (it shows the login page), and a network failure shown as the
// "server unreachable" banner until a request gets through again.

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
const hooks = { unauthorized: () => {}, reachability: (_up) => {} };

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Called with no argument when the server answers 401 (not logged in, session expired). */
export function onUnauthorized(fn) { hooks.unauthorized = fn; }

/** Called with true/false as the server becomes reachable/unreachable. */
export function onReachability(fn) { hooks.reachability = fn; }

/** The value of a cookie readable by scripts (only vigil_csrf is). */
export function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

/** True when a session seems to exist (the CSRF cookie is set beside the session cookie). */
export function hasSession() { return Boolean(cookie('vigil_csrf')); }

/** "?a=1&b=2" from an object, leaving out null, undefined and empty strings. */
export function qs(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === '') continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** A path segment, encoded (camera and user names come from the server, still encode them). */
export function seg(value) { return encodeURIComponent(String(value)); }

async function readError(reply) {
  try {
    const body = await reply.json();
    if (body && body.error && body.error.message) {
      return new ApiError(reply.status, body.error.code || 'error', body.error.message);
    }
  } catch (_) { /* not JSON: fall through */ }
  return new ApiError(reply.status, 'http_error', `The server answered ${reply.status} ${reply.statusText}`);
}

/**
 * Call the API. `body` is sent as JSON; the reply is parsed as JSON (null for 204), or the
 * Response itself with `raw: true`; `headers`: more request headers. Throws ApiError (status 0, code "unreachable" when the
 * server could not be reached).
 */
export async function api(path, { method = 'GET', body, query, raw = false, signal, headers: extra } = {}) {
  const headers = { Accept: 'application/json', ...(extra || {}) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE.has(method)) {
    const token = cookie('vigil_csrf');
    if (token) headers['X-CSRF-Token'] = token;
  }
  let reply;
  try {
    reply = await fetch(path + qs(query), {
      method, headers, signal, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    hooks.reachability(false);
    throw new ApiError(0, 'unreachable', 'Server unreachable: check that vigil serve is running.');
  }
  hooks.reachability(true);
  if (!reply.ok) {
    const error = await readError(reply);
    if (reply.status === 401 && path !== '/api/login') hooks.unauthorized();
    throw error;
  }
  if (raw) return reply;
  if (reply.status === 204) return null;
  const type = reply.headers.get('content-type') || '';
  return type.includes('json') ? reply.json() : reply.text();
}

// What each role may do, as vigil/api/auth.py ROLE_CAPS says (the server enforces it; the
// UI only hides what would be refused).
const CAPS = {
  viewer: ['read'],
  operator: ['read', 'operate'],
  auditor: ['audit'],
  admin: ['read', 'operate', 'audit', 'admin'],
};

/** True when `me` (from /api/me or /api/login) has capability `cap`. */
export function can(me, cap) {
  return Boolean(me && (CAPS[me.role] || []).includes(cap));
}
