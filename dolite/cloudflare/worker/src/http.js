// HTTP plumbing shared by the storage Worker (worker.js) and its benchmark build (bench.js):
// errors in the shape of dolite's HTTP service, the shared-secret check, and request bodies
// read under a size cap.

const utf8 = new TextEncoder();
const MAX_NAME_BYTES = 1024;

/** Every error code the Worker answers with, and its one HTTP status (as dolite's service). */
export const STATUS = {
  bad_request: 400, // malformed request: framing, names, parameters, SQL of the bench route
  unauthorized: 401, // missing or wrong shared secret
  not_found: 404, // no such route
  method_not_allowed: 405,
  conflict: 409, // a commit expectation did not hold; nothing was written
  limit_exceeded: 413, // a key, value or batch over a declared storage limit
  payload_too_large: 413, // a request body over the cap
  internal: 500, // an unexpected failure inside the Worker or a Durable Object
  misconfigured: 500, // the Worker was deployed without DOLITE_SECRET
};

/** An error answered as JSON `{"error": {"code", "message"}}` with the code's status. */
export class HttpError extends Error {
  constructor(code, message) {
    super(message);
    if (!(code in STATUS)) throw new Error(`unknown error code ${code}`);
    this.code = code;
  }
}

export const badRequest = (message) => new HttpError("bad_request", message);

export function errorResponse(code, message) {
  return Response.json({ error: { code, message } }, { status: STATUS[code] });
}

/** Run `handler`; answer any error in the service's shape (an unexpected one as `internal`). */
export async function answering(handler) {
  try {
    return await handler();
  } catch (err) {
    if (err instanceof HttpError) return errorResponse(err.code, err.message);
    return errorResponse("internal", String(err?.message ?? err));
  }
}

async function secretMatches(given, expected) {
  const digest = (text) => crypto.subtle.digest("SHA-256", utf8.encode(text));
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/**
 * Throws unless the request carries `Authorization: Bearer <DOLITE_SECRET>` (compared in
 * constant time). A Worker with no DOLITE_SECRET refuses everything.
 */
export async function authenticate(request, env) {
  if (!env.DOLITE_SECRET) throw new HttpError("misconfigured", "the Worker has no DOLITE_SECRET configured");
  const auth = request.headers.get("authorization") ?? "";
  const given = auth.startsWith("Bearer ") ? auth.slice(7) : "";
  if (!given || !(await secretMatches(given, env.DOLITE_SECRET))) {
    throw new HttpError("unauthorized", "missing or wrong dolite secret");
  }
}

const tooLarge = (size, cap) =>
  new HttpError("payload_too_large", `request body of ${size} bytes or more is over the cap of ${cap} bytes`);

/**
 * The request body as an ArrayBuffer; over `cap` bytes it is refused (payload_too_large)
 * without being buffered, whether it declares its length or arrives chunked.
 */
export async function readBody(request, cap) {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > cap) throw tooLarge(Number(declared), cap);
  if (request.body === null) return new ArrayBuffer(0);
  if (declared !== null) return request.arrayBuffer(); // the runtime holds it to that length
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel();
      throw tooLarge(size, cap);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out.buffer;
}

/** Throws method_not_allowed unless the request uses `method`. */
export function requireMethod(request, method, what) {
  if (request.method !== method) {
    throw new HttpError("method_not_allowed", `${what} takes ${method}, not ${request.method}`);
  }
}

/** Throws bad_request if `params` holds a parameter outside `allowed`: none is ignored. */
export function onlyParams(params, allowed) {
  for (const key of params.keys()) {
    if (!allowed.includes(key)) throw badRequest(`unknown query parameter ${JSON.stringify(key)}`);
  }
}

/** The object name from its percent-encoded path segment; bad_request if it is not one. */
export function objectName(encodedName) {
  let name;
  try {
    name = decodeURIComponent(encodedName);
  } catch {
    throw badRequest("object name is not valid percent-encoded UTF-8");
  }
  if (!name || utf8.encode(name).byteLength > MAX_NAME_BYTES) {
    throw badRequest(`object names are 1 to ${MAX_NAME_BYTES} bytes`);
  }
  return name;
}
