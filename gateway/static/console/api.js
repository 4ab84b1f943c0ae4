// The console's access to the API: bearer token from sessionStorage, JSON in and out.

const KEY = 'intake.token';

/** The signed-in token: from ?token= (then dropped from the address bar) or sessionStorage. */
export function takeToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(KEY);
}

export function saveToken(token) { sessionStorage.setItem(KEY, token); }
export function dropToken() { sessionStorage.removeItem(KEY); }
export function token() { return sessionStorage.getItem(KEY); }

/** An API error with the envelope's code and message (and each field's error, for a form). */
export class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

/** Call the API; resolves to the JSON body, rejects with ApiError. */
export async function api(path, { method = 'GET', body, headers: extra = {} } = {}) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: 'application/json', ...extra };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store',
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(response.status, err.code || 'http_' + response.status, err.message || text.slice(0, 200),
      err.fields || []);
  }
  return data;
}

/** Like api(), but answers `fallback` when the endpoint is not there (yet). */
export async function optional(path, fallback) {
  try {
    return await api(path);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return fallback;
    throw err;
  }
}
