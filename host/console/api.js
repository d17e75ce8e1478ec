// The public /v1 API, called with the token the person typed. The token is
// kept in sessionStorage only: it goes when the tab closes.

const TOKEN_KEY = 'hookshape.token';

export const session = {
  token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** An answer other than 2xx, with the API's own code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API. `json` is sent as a JSON body, `body` as is (with
 * `contentType`). Resolves to the parsed answer (null for 204; its text
 * with `text: true`), or rejects with an ApiError carrying the API's message. */
export async function api(method, path, { json, body, contentType, text: asText } = {}) {
  const headers = { Authorization: `Bearer ${session.token() || ''}` };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (body !== undefined) {
    headers['Content-Type'] = contentType || 'application/octet-stream';
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'network', `The server could not be reached (${err.message}).`);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  if (response.ok && asText) return text;
  let value = null;
  try {
    value = text ? JSON.parse(text) : null;
  } catch {
    value = null;
  }
  if (!response.ok) {
    const error = value && value.error;
    throw new ApiError(response.status, error ? error.code : `http_${response.status}`,
      error ? error.message : `${response.status} ${response.statusText}`);
  }
  return value;
}

/** `/v1/tenants/{tenant}/...rest`, every segment escaped. */
export function tenantPath(tenant, ...rest) {
  return ['/v1/tenants', tenant, ...rest].map((s, i) => (i ? encodeURIComponent(s) : s)).join('/');
}
