// The service's public HTTP API, with the token kept in this tab's sessionStorage only.

const KEY = "dolite-console-token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  describe() { return `${this.code} (HTTP ${this.status}): ${this.message}`; }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

// Call the API; resolve with the JSON (or text) answer, reject with an ApiError.
export async function api(path, { method = "GET", body, text = false, tokenOverride } = {}) {
  const headers = { Authorization: `Bearer ${tokenOverride ?? token.get() ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (exc) {
    throw new ApiError(0, "network_error", `cannot reach the service: ${exc.message}`);
  }
  if (response.ok) return text ? response.text() : response.json();
  let error = { code: "http_error", message: response.statusText };
  try { error = (await response.json()).error ?? error; } catch { /* not JSON */ }
  const failure = new ApiError(response.status, error.code, error.message);
  if (response.status === 401 && tokenOverride === undefined) onUnauthorized(failure);
  throw failure;
}

export const db = (name) => `/v1/databases/${encodeURIComponent(name)}`;
export const cluster = (name) => `/v1/clusters/${encodeURIComponent(name)}`;

// Run fn over items with at most `limit` calls in flight (the service limits each token).
export async function mapLimited(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
