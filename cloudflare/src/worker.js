// dolite storage Worker: the Durable Object storage contract over HTTP.
//
// One Durable Object (DoliteObject) per dolite object name, addressed by idFromName(name). It
// owns that object's key-value storage and applies every call atomically where the data
// lives, including the compare-and-set of `commit`. A second class, DoliteRegistry (a single
// instance), records which object names have been written, for Namespace.names().
//
// HTTP API (every route but /v1/health needs `Authorization: Bearer <DOLITE_SECRET>`):
//   GET  /v1/health                      -> 200 "ok"
//   GET  /v1/info                        -> JSON {limits, listPage, namesPage}
//   GET  /v1/names?prefix=P&after=NAME   -> JSON {names: [...], more: bool, last: NAME}
//   POST /v1/objects/{name}/get          body: records(keys)     -> records(entries)
//   POST /v1/objects/{name}/put          body: records(entries)  -> 204
//   POST /v1/objects/{name}/delete       body: records(keys)     -> JSON {deleted: n}
//   POST /v1/objects/{name}/commit       body: records(writes) records(deletes) records(expect)
//                                        -> 204, or 409 when an expectation does not hold
//   GET  /v1/objects/{name}/list?start=&end=&prefix=&limit=&reverse=1
//                                        -> records(entries); header x-dolite-more: 1 if capped
//   POST /v1/objects/{name}/drop         -> 204 (deleteAll, then unregister the name)
//   POST /v1/native/{name}/sql           body: JSON {sql, params} or {batch: [{sql, params}, ...]}
//                                        -> JSON {columns, rows, rowsRead, rowsWritten}
//        A benchmark baseline only, not a product API: runs SQL natively in a SQLite-backed
//        Durable Object (NativeSqlObject) so `dolite cloudflare bench` can compare dolite's
//        page store with the same workload in `ctx.storage.sql`. See NativeSqlObject below.
//
// Binary framing ("records"), all integers unsigned 32-bit big-endian:
//   count, then per record: keyLength, key (UTF-8), valueLength, value
//   valueLength 0xFFFFFFFF means "no value" (a bare key, or "expect absent" in commit).
// Errors are JSON {error, message} with 400 (malformed), 401 (secret), 404 (route),
// 409 (conflict), 413 (over a storage limit).

import { DurableObject } from "cloudflare:workers";

// Durable Object KV limits. A stored value is V8-serialized, and on KV-backed objects the
// 131,072-byte cap applies to the serialized form: an ArrayBuffer of n >= 16 KiB bytes
// serializes to n + 6 bytes. The raw value limit is 131,072 - 6, less 2 bytes of margin for
// serializer header changes (see cloudflare/README.md). Enforced here, before any write, so
// local workerd (SQLite-backed, which would accept more) refuses exactly what Cloudflare would.
export const LIMITS = {
  maxKeyBytes: 2048,
  maxValueBytes: 131072 - 8,
  maxKeysPerCall: 128,
};
const MAX_NAME_BYTES = 1024;
const LIST_PAGE = 128; // entries per list response; the client paginates
const NAMES_PAGE = 40; // names per /v1/names response (each is checked with one subrequest)
const NONE = 0xffffffff;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

class HttpError extends Error {
  constructor(status, kind, message) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

const limitError = (message) => new HttpError(413, "limit", message);
const badRequest = (message) => new HttpError(400, "bad_request", message);

function errorResponse(status, kind, message) {
  return Response.json({ error: kind, message }, { status });
}

// -- framing ------------------------------------------------------------------------------

/** Decode consecutive record lists from `buffer`; returns an array of [key, value|null][]. */
function decodeRecordLists(buffer, howMany) {
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  let at = 0;
  const u32 = () => {
    if (at + 4 > view.byteLength) throw badRequest("truncated request body");
    const n = view.getUint32(at);
    at += 4;
    return n;
  };
  const take = (n) => {
    if (at + n > view.byteLength) throw badRequest("truncated request body");
    const slice = buffer.slice(at, at + n);
    at += n;
    return slice;
  };
  const lists = [];
  for (let i = 0; i < howMany; i++) {
    const count = u32();
    if (count > LIMITS.maxKeysPerCall) {
      throw limitError(`a call names ${count} keys, over the limit of ${LIMITS.maxKeysPerCall}`);
    }
    const records = [];
    for (let j = 0; j < count; j++) {
      const keyLength = u32();
      if (keyLength > LIMITS.maxKeyBytes) {
        throw limitError(`storage key of ${keyLength} bytes exceeds the limit of ${LIMITS.maxKeyBytes}`);
      }
      if (keyLength === 0) throw limitError("storage key is empty");
      let key;
      try {
        key = fromUtf8.decode(bytes.subarray(at, at + keyLength));
      } catch {
        throw badRequest("storage key is not valid UTF-8");
      }
      take(keyLength);
      const valueLength = u32();
      let value = null;
      if (valueLength !== NONE) {
        if (valueLength > LIMITS.maxValueBytes) {
          throw limitError(
            `value of ${JSON.stringify(key)} is ${valueLength} bytes, over the limit of ${LIMITS.maxValueBytes}`,
          );
        }
        value = take(valueLength);
      }
      records.push([key, value]);
    }
    lists.push(records);
  }
  if (at !== view.byteLength) throw badRequest("trailing bytes after request body");
  return lists;
}

/** Encode [key, ArrayBuffer][] (or a Map) as one record list. */
function encodeRecords(entries) {
  const parts = [];
  let size = 4;
  for (const [key, value] of entries) {
    const k = utf8.encode(key);
    const v = value === undefined || value === null ? null : new Uint8Array(value);
    parts.push([k, v]);
    size += 8 + k.byteLength + (v ? v.byteLength : 0);
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint32(at, parts.length);
  at += 4;
  for (const [k, v] of parts) {
    view.setUint32(at, k.byteLength);
    out.set(k, at + 4);
    at += 4 + k.byteLength;
    view.setUint32(at, v ? v.byteLength : NONE);
    at += 4;
    if (v) {
      out.set(v, at);
      at += v.byteLength;
    }
  }
  return out;
}

function sameBytes(a, b) {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function toArrayBuffer(value) {
  if (value instanceof ArrayBuffer) return value;
  if (ArrayBuffer.isView(value)) return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
  throw new HttpError(500, "internal", "stored value is not binary");
}

// -- the Durable Object owning one dolite object -------------------------------------------

export class DoliteObject extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.registered = false;
  }

  async fetch(request) {
    const op = new URL(request.url).pathname.slice(1);
    const name = decodeURIComponent(request.headers.get("x-dolite-name") ?? "");
    try {
      switch (op) {
        case "get": return await this.get(await request.arrayBuffer());
        case "put": return await this.commit(await request.arrayBuffer(), name, 1);
        case "delete": return await this.delete(await request.arrayBuffer());
        case "commit": return await this.commit(await request.arrayBuffer(), name, 3);
        case "list": return await this.list(new URL(request.url).searchParams);
        case "exists": return Response.json({ exists: (await this.ctx.storage.list({ limit: 1 })).size > 0 });
        case "drop": return await this.drop(name);
        default: return errorResponse(404, "not_found", `unknown object operation ${op}`);
      }
    } catch (err) {
      if (err instanceof HttpError) return errorResponse(err.status, err.kind, err.message);
      throw err;
    }
  }

  async get(body) {
    const [keys] = decodeRecordLists(body, 1);
    const found = await this.ctx.storage.get(keys.map(([k]) => k));
    const out = [];
    for (const [key, value] of found) out.push([key, toArrayBuffer(value)]);
    return new Response(encodeRecords(out), { headers: { "content-type": "application/octet-stream" } });
  }

  async delete(body) {
    const [keys] = decodeRecordLists(body, 1);
    const deleted = keys.length ? await this.ctx.storage.delete(keys.map(([k]) => k)) : 0;
    return Response.json({ deleted });
  }

  /** put (one list: the writes) and commit (writes, deletes, expect): one atomic batch. */
  async commit(body, name, lists) {
    const [writes, deletes = [], expect = []] = decodeRecordLists(body, lists);
    if (writes.length + deletes.length > LIMITS.maxKeysPerCall) {
      throw limitError(
        `commit names ${writes.length + deletes.length} keys, over the limit of ${LIMITS.maxKeysPerCall} a call`,
      );
    }
    if (writes.some(([, v]) => v === null)) throw badRequest("a write has no value");
    if (writes.length) await this.ensureRegistered(name);
    // Everything is validated; from here on the batch is applied whole or not at all. The
    // transaction makes the compare and the writes one atomic, isolated unit in this object.
    const conflict = await this.ctx.storage.transaction(async (txn) => {
      if (expect.length) {
        const current = await txn.get(expect.map(([k]) => k));
        for (const [key, want] of expect) {
          const have = current.get(key);
          const holds = want === null ? have === undefined : have !== undefined && sameBytes(toArrayBuffer(have), want);
          if (!holds) return `commit refused: ${JSON.stringify(key)} changed`;
        }
      }
      const pending = [];
      if (deletes.length) pending.push(txn.delete(deletes.map(([k]) => k)));
      if (writes.length) {
        const entries = Object.create(null);
        for (const [key, value] of writes) entries[key] = value;
        pending.push(txn.put(entries));
      }
      await Promise.all(pending); // a failed write rejects, rolling the whole transaction back
      return null;
    });
    if (conflict) return errorResponse(409, "conflict", conflict);
    return new Response(null, { status: 204 });
  }

  async list(params) {
    const options = { limit: LIST_PAGE };
    for (const field of ["start", "end", "prefix"]) {
      if (params.has(field)) options[field] = params.get(field);
    }
    if (params.get("reverse") === "1") options.reverse = true;
    let wanted = Infinity;
    if (params.has("limit")) {
      wanted = Number(params.get("limit"));
      if (!Number.isInteger(wanted) || wanted < 0) throw badRequest("limit must be a non-negative integer");
      options.limit = Math.min(wanted, LIST_PAGE);
    }
    const found = options.limit === 0 ? new Map() : await this.ctx.storage.list(options);
    const out = [];
    for (const [key, value] of found) out.push([key, toArrayBuffer(value)]);
    const more = out.length === LIST_PAGE && wanted > LIST_PAGE;
    return new Response(encodeRecords(out), {
      headers: { "content-type": "application/octet-stream", "x-dolite-more": more ? "1" : "0" },
    });
  }

  async drop(name) {
    // No other request to this object runs until the keys are gone and the name unregistered.
    await this.ctx.blockConcurrencyWhile(async () => {
      await this.ctx.storage.deleteAll();
      await registry(this.env).fetch(registryRequest("remove", name));
      this.registered = false;
    });
    return new Response(null, { status: 204 });
  }

  async ensureRegistered(name) {
    if (this.registered) return;
    await this.ctx.blockConcurrencyWhile(async () => {
      if (this.registered) return;
      const reply = await registry(this.env).fetch(registryRequest("add", name));
      if (!reply.ok) throw new HttpError(500, "internal", `registry refused ${name}: ${reply.status}`);
      this.registered = true;
    });
  }
}

// -- the registry of object names ---------------------------------------------------------

const registry = (env) => env.REGISTRY.get(env.REGISTRY.idFromName("dolite-registry"));
const registryRequest = (op, name, query = "") =>
  new Request(`https://registry/${op}${query}`, { method: "POST", headers: { "x-dolite-name": encodeURIComponent(name ?? "") } });

/** One instance: keys are object names that have been written (and not dropped since). */
export class DoliteRegistry extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    const name = decodeURIComponent(request.headers.get("x-dolite-name") ?? "");
    switch (url.pathname) {
      case "/add":
        await this.ctx.storage.put(name, 1);
        return new Response(null, { status: 204 });
      case "/remove":
        await this.ctx.storage.delete(name);
        return new Response(null, { status: 204 });
      case "/list": {
        const options = { limit: NAMES_PAGE + 1 };
        if (url.searchParams.get("after")) options.start = url.searchParams.get("after") + "\0";
        if (url.searchParams.get("prefix")) options.prefix = url.searchParams.get("prefix");
        const names = [...(await this.ctx.storage.list(options)).keys()];
        return Response.json({ names: names.slice(0, NAMES_PAGE), more: names.length > NAMES_PAGE });
      }
      default:
        return errorResponse(404, "not_found", "unknown registry operation");
    }
  }
}

// -- benchmark baseline: SQL run natively in a SQLite-backed Durable Object ----------------
//
// NOT a product API. `dolite cloudflare bench` (dolite/cloudflare/bench.py) sends the same
// statements it runs through dolite to this class, one request per commit or point read, to
// compare with `ctx.storage.sql.exec`. It is reachable only with the shared secret (the front
// Worker checks it), has no limits beyond the runtime's own, and offers no schema safety:
// whoever holds the secret can already read and write every dolite object anyway.
//
// Body: {"sql": "...", "params": [...]} runs one statement (its writes are one implicit
// transaction, made durable before the reply), or {"batch": [{"sql", "params"}, ...]} runs
// several in one `transactionSync`: all or nothing. The reply describes the last statement:
// {columns, rows (arrays), rowsRead, rowsWritten} summed over the batch. Params are JSON
// scalars; SQL errors answer 400 {error: "sql", message}.

const MAX_NATIVE_BODY = 8 << 20;

export class NativeSqlObject extends DurableObject {
  async fetch(request) {
    try {
      const body = await request.text();
      if (body.length > MAX_NATIVE_BODY) throw limitError(`body over ${MAX_NATIVE_BODY} bytes`);
      let message;
      try {
        message = JSON.parse(body);
      } catch {
        throw badRequest("body is not JSON");
      }
      const batch = Array.isArray(message?.batch) ? message.batch : [message];
      for (const item of batch) {
        if (typeof item?.sql !== "string") throw badRequest("each statement needs a string `sql`");
        if (item.params !== undefined && !Array.isArray(item.params)) throw badRequest("`params` is an array");
      }
      const sql = this.ctx.storage.sql;
      const run = () => {
        let last = null;
        let rowsRead = 0;
        let rowsWritten = 0;
        for (const { sql: text, params = [] } of batch) {
          const cursor = sql.exec(text, ...params);
          const rows = cursor.raw().toArray(); // consume before reading the counters
          rowsRead += cursor.rowsRead;
          rowsWritten += cursor.rowsWritten;
          last = { columns: cursor.columnNames, rows };
        }
        return { ...last, rowsRead, rowsWritten };
      };
      let result;
      try {
        result = batch.length > 1 ? this.ctx.storage.transactionSync(run) : run();
      } catch (err) {
        throw new HttpError(400, "sql", String(err?.message ?? err));
      }
      return Response.json(result);
    } catch (err) {
      if (err instanceof HttpError) return errorResponse(err.status, err.kind, err.message);
      throw err;
    }
  }
}

// -- the front Worker: authentication and routing -----------------------------------------

async function secretMatches(given, expected) {
  const digest = (text) => crypto.subtle.digest("SHA-256", utf8.encode(text));
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  return crypto.subtle.timingSafeEqual(a, b);
}

const OBJECT_OPS = { get: "POST", put: "POST", delete: "POST", commit: "POST", list: "GET", drop: "POST" };

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/v1/health") return new Response("ok");
    if (!env.DOLITE_SECRET) {
      return errorResponse(500, "misconfigured", "the Worker has no DOLITE_SECRET configured");
    }
    const auth = request.headers.get("authorization") ?? "";
    const given = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!given || !(await secretMatches(given, env.DOLITE_SECRET))) {
      return errorResponse(401, "unauthorized", "missing or wrong dolite secret");
    }
    if (url.pathname === "/v1/info") {
      return Response.json({ limits: LIMITS, listPage: LIST_PAGE, namesPage: NAMES_PAGE });
    }
    if (url.pathname === "/v1/names") return names(env, url.searchParams);
    const native = url.pathname.match(/^\/v1\/native\/([^/]+)\/sql$/);
    if (native) return nativeSql(request, env, native[1]);
    const match = url.pathname.match(/^\/v1\/objects\/([^/]+)\/([a-z]+)$/);
    if (!match || !(match[2] in OBJECT_OPS)) return errorResponse(404, "not_found", `no route ${url.pathname}`);
    const [, encodedName, op] = match;
    if (request.method !== OBJECT_OPS[op]) {
      return errorResponse(405, "method", `${op} takes ${OBJECT_OPS[op]}, not ${request.method}`);
    }
    const name = objectName(encodedName);
    if (name instanceof Response) return name;
    const stub = env.OBJECTS.get(env.OBJECTS.idFromName(name));
    return stub.fetch(`https://object/${op}${url.search}`, {
      method: request.method,
      headers: { "x-dolite-name": encodedName }, // header values are Latin-1: keep it encoded
      body: request.method === "POST" ? request.body : undefined,
    });
  },
};

/** The object name from its percent-encoded path segment, or a 400 Response. */
function objectName(encodedName) {
  let name;
  try {
    name = decodeURIComponent(encodedName);
  } catch {
    return errorResponse(400, "bad_request", "object name is not valid percent-encoded UTF-8");
  }
  if (!name || utf8.encode(name).byteLength > MAX_NAME_BYTES) {
    return errorResponse(400, "bad_request", `object names are 1 to ${MAX_NAME_BYTES} bytes`);
  }
  return name;
}

/** The benchmark baseline: forward one SQL request to the named NativeSqlObject. */
async function nativeSql(request, env, encodedName) {
  if (request.method !== "POST") return errorResponse(405, "method", "sql takes POST");
  if (!env.NATIVE) return errorResponse(404, "not_found", "this Worker has no NATIVE binding");
  const name = objectName(encodedName);
  if (name instanceof Response) return name;
  const stub = env.NATIVE.get(env.NATIVE.idFromName(name));
  return stub.fetch("https://native/sql", { method: "POST", body: request.body });
}

/** A page of registered names, keeping only objects that still hold at least one key. */
async function names(env, params) {
  const query = new URLSearchParams({ after: params.get("after") ?? "", prefix: params.get("prefix") ?? "" });
  const reply = await registry(env).fetch(registryRequest("list", null, `?${query}`));
  const page = await reply.json();
  const held = await Promise.all(
    page.names.map(async (name) => {
      const r = await env.OBJECTS.get(env.OBJECTS.idFromName(name)).fetch("https://object/exists");
      return (await r.json()).exists;
    }),
  );
  const last = page.names.length ? page.names[page.names.length - 1] : null;
  return Response.json({ names: page.names.filter((_, i) => held[i]), more: page.more, last });
}
