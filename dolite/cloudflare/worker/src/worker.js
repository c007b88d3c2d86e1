// dolite storage Worker: the Durable Object storage contract over HTTP, and nothing else.
//
// One Durable Object (DoliteObject) per dolite object name, addressed by idFromName(name). It
// owns that object's key-value storage and applies every call atomically where the data
// lives, including the compare-and-set of `commit`. A second class, DoliteRegistry (a single
// instance), records which object names have been written, for Namespace.names().
//
// HTTP API (every route but /v1/health needs `Authorization: Bearer <DOLITE_SECRET>`):
//   GET  /v1/health                      -> 200 "ok"
//   GET  /v1/info                        -> JSON {limits, maxRequestBytes, listPage, namesPage}
//   GET  /v1/names?prefix=P&after=NAME   -> JSON {names: [...], more: bool, last: NAME}
//   POST /v1/objects/{name}/get          body: records(keys)     -> records(entries)
//   POST /v1/objects/{name}/put          body: records(entries)  -> 204
//   POST /v1/objects/{name}/delete       body: records(keys)     -> JSON {deleted: n}
//   POST /v1/objects/{name}/commit       body: records(writes) records(deletes) records(expect)
//                                        -> 204, or 409 when an expectation does not hold
//   GET  /v1/objects/{name}/list?start=&end=&prefix=&limit=&reverse=1
//                                        -> records(entries); header x-dolite-more: 1 if capped
//   POST /v1/objects/{name}/drop         -> 204 (deleteAll, then unregister the name)
//
// Every object route's answer (errors included, drop excepted) carries the billed storage
// rows the call used, as counted here: `x-dolite-rows: read=N,written=M`. On a SQLite-backed
// object each key a get (or a commit's expectation) names is one row read, each entry a list
// returns one row read, each key a put names one row written, and each key a delete finds and
// removes one row written (Cloudflare bills the key-value API in rows, deletes as rows
// written; a key already absent, or named twice, removes no further row); the first write to
// an object also writes its name in the registry.
//
// Bodies use the binary framing of records.js. A body over MAX_REQUEST_BYTES is refused
// unread. Errors are JSON {"error": {"code", "message"}}, the shape and codes of dolite's
// HTTP service (see STATUS in http.js): bad_request 400, unauthorized 401, not_found 404,
// method_not_allowed 405, conflict 409, limit_exceeded 413 (over a storage limit),
// payload_too_large 413 (body over the cap), internal 500, misconfigured 500.
//
// The benchmark baseline (SQL run natively in a Durable Object) is not here: it lives in
// bench.js, which only the local benchmark config (workerd-bench.capnp) loads.

import { DurableObject } from "cloudflare:workers";
import {
  HttpError, answering, authenticate, badRequest, objectName, onlyParams, readBody, requireMethod,
} from "./http.js";
import { LIMITS, MAX_REQUEST_BYTES, decodeRecordLists, encodeRecords, limitExceeded } from "./records.js";

const LIST_PAGE = 128; // entries per list response; the client paginates
const NAMES_PAGE = 40; // names per /v1/names response (each is checked with one subrequest)

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
  throw new HttpError("internal", "stored value is not binary");
}

const binary = (body, headers = {}) =>
  new Response(body, { headers: { "content-type": "application/octet-stream", ...headers } });

// -- the Durable Object owning one dolite object -------------------------------------------

export class DoliteObject extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.registered = false;
  }

  async fetch(request) {
    const url = new URL(request.url);
    const op = url.pathname.slice(1);
    const rows = { read: 0, written: 0 }; // this request's billed rows (see the header comment)
    const response = await answering(async () => {
      const name = decodeURIComponent(request.headers.get("x-dolite-name") ?? "");
      switch (op) {
        case "get": return this.get(await request.arrayBuffer(), rows);
        case "put": return this.commit(await request.arrayBuffer(), name, ["entries"], rows);
        case "delete": return this.delete(await request.arrayBuffer(), rows);
        case "commit": return this.commit(await request.arrayBuffer(), name, ["entries", "keys", "expect"], rows);
        case "list": return this.list(url.searchParams, rows);
        case "exists": return Response.json({ exists: (await this.ctx.storage.list({ limit: 1 })).size > 0 });
        case "drop": return this.drop(name);
        default: throw new HttpError("not_found", `unknown object operation ${op}`);
      }
    });
    // drop's deleteAll reports no count, so its answer claims none.
    if (op !== "drop") response.headers.set("x-dolite-rows", `read=${rows.read},written=${rows.written}`);
    return response;
  }

  async get(body, rows) {
    const [keys] = decodeRecordLists(body, ["keys"]);
    rows.read += keys.length;
    const found = await this.ctx.storage.get(keys.map(([k]) => k));
    const out = [];
    for (const [key, value] of found) out.push([key, toArrayBuffer(value)]);
    return binary(encodeRecords(out));
  }

  async delete(body, rows) {
    const [keys] = decodeRecordLists(body, ["keys"]);
    const deleted = keys.length ? await this.ctx.storage.delete(keys.map(([k]) => k)) : 0;
    rows.written += deleted;
    return Response.json({ deleted });
  }

  /** put (one list: the writes) and commit (writes, deletes, expect): one atomic batch. */
  async commit(body, name, kinds, rows) {
    const [writes, deletes = [], expect = []] = decodeRecordLists(body, kinds);
    if (writes.length + deletes.length > LIMITS.maxKeysPerCall) {
      throw limitExceeded(
        `commit names ${writes.length + deletes.length} keys, over the limit of ${LIMITS.maxKeysPerCall} a call`,
      );
    }
    if (writes.length && (await this.ensureRegistered(name))) rows.written += 1;
    // Everything is validated; from here on the batch is applied whole or not at all, with
    // no explicit transaction (one more callback and commit: 0-0.05 ms a call on an idle
    // machine, ~0.3 ms with its CPUs busy, measured on local workerd): the input gate delivers
    // no other request while the expectations are read (a storage await), and writes issued
    // with no await between them are committed as one atomic batch, or the object is reset.
    // Nothing but storage may be awaited between the read and the writes.
    const storage = this.ctx.storage;
    rows.read += expect.length; // a refused commit has read its expectations too
    if (expect.length) {
      const current = await storage.get(expect.map(([k]) => k));
      for (const [key, want] of expect) {
        const have = current.get(key);
        const holds = want === null ? have === undefined : have !== undefined && sameBytes(toArrayBuffer(have), want);
        if (!holds) throw new HttpError("conflict", `commit refused: ${JSON.stringify(key)} changed`);
      }
    }
    const [deleted] = await Promise.all([
      deletes.length ? storage.delete(deletes.map(([k]) => k)) : 0,
      writes.length ? storage.put(Object.fromEntries(writes)) : null,
    ]);
    rows.written += deleted + writes.length;
    return new Response(null, { status: 204 });
  }

  async list(params, rows) {
    onlyParams(params, ["start", "end", "prefix", "limit", "reverse"]);
    const options = { limit: LIST_PAGE };
    for (const field of ["start", "end", "prefix"]) {
      if (params.has(field)) options[field] = params.get(field);
    }
    const reverse = params.get("reverse") ?? "0";
    if (reverse !== "0" && reverse !== "1") throw badRequest("reverse must be 0 or 1");
    if (reverse === "1") options.reverse = true;
    let wanted = Infinity;
    if (params.has("limit")) {
      wanted = Number(params.get("limit"));
      if (!Number.isInteger(wanted) || wanted < 0) throw badRequest("limit must be a non-negative integer");
      options.limit = Math.min(wanted, LIST_PAGE);
    }
    const found = options.limit === 0 ? new Map() : await this.ctx.storage.list(options);
    const out = [];
    for (const [key, value] of found) out.push([key, toArrayBuffer(value)]);
    rows.read += out.length;
    const more = out.length === LIST_PAGE && wanted > LIST_PAGE;
    return binary(encodeRecords(out), { "x-dolite-more": more ? "1" : "0" });
  }

  async drop(name) {
    // No other request to this object runs until the keys are gone and the name unregistered.
    await this.ctx.blockConcurrencyWhile(async () => {
      await this.ctx.storage.deleteAll();
      await registryCall(this.env, "remove", name);
      this.registered = false;
    });
    return new Response(null, { status: 204 });
  }

  /** Records `name` in the registry once per object instance; true if this call wrote it. */
  async ensureRegistered(name) {
    if (this.registered) return false;
    return this.ctx.blockConcurrencyWhile(async () => {
      if (this.registered) return false;
      await registryCall(this.env, "add", name);
      this.registered = true;
      return true;
    });
  }
}

// -- the registry of object names ---------------------------------------------------------

/** One call to the registry object; a refusal is an internal error. */
async function registryCall(env, op, name, query = "") {
  const stub = env.REGISTRY.get(env.REGISTRY.idFromName("dolite-registry"));
  const reply = await stub.fetch(`https://registry/${op}${query}`, {
    method: "POST",
    headers: { "x-dolite-name": encodeURIComponent(name ?? "") },
  });
  if (!reply.ok) throw new HttpError("internal", `registry ${op} ${JSON.stringify(name)}: ${reply.status} ${await reply.text()}`);
  return reply;
}

/** One instance: keys are object names that have been written (and not dropped since). */
export class DoliteRegistry extends DurableObject {
  async fetch(request) {
    return answering(async () => {
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
          throw new HttpError("not_found", "unknown registry operation");
      }
    });
  }
}

// -- the front Worker: authentication and routing -----------------------------------------

const OBJECT_OPS = { get: "POST", put: "POST", delete: "POST", commit: "POST", list: "GET", drop: "POST" };

export default {
  async fetch(request, env) {
    return answering(() => route(request, env));
  },
};

/** Routes one request of the storage contract. */
async function route(request, env) {
  const url = new URL(request.url);
  if (url.pathname === "/v1/health") return new Response("ok");
  await authenticate(request, env);
  if (url.pathname === "/v1/info") {
    requireMethod(request, "GET", "info");
    return Response.json({ limits: LIMITS, maxRequestBytes: MAX_REQUEST_BYTES, listPage: LIST_PAGE, namesPage: NAMES_PAGE });
  }
  if (url.pathname === "/v1/names") {
    requireMethod(request, "GET", "names");
    return names(env, url.searchParams);
  }
  const match = url.pathname.match(/^\/v1\/objects\/([^/]+)\/([a-z]+)$/);
  if (!match || !(match[2] in OBJECT_OPS)) throw new HttpError("not_found", `no route ${url.pathname}`);
  const [, encodedName, op] = match;
  requireMethod(request, OBJECT_OPS[op], op);
  const name = objectName(encodedName);
  const stub = env.OBJECTS.get(env.OBJECTS.idFromName(name));
  return stub.fetch(`https://object/${op}${url.search}`, {
    method: request.method,
    headers: { "x-dolite-name": encodedName }, // header values are Latin-1: keep it encoded
    body: request.method === "POST" ? await readBody(request, MAX_REQUEST_BYTES) : undefined,
  });
}

/** A page of registered names, keeping only objects that still hold at least one key. */
async function names(env, params) {
  onlyParams(params, ["after", "prefix"]);
  const query = new URLSearchParams({ after: params.get("after") ?? "", prefix: params.get("prefix") ?? "" });
  const page = await (await registryCall(env, "list", null, `?${query}`)).json();
  const held = await Promise.all(
    page.names.map(async (name) => {
      const reply = await env.OBJECTS.get(env.OBJECTS.idFromName(name)).fetch("https://object/exists");
      if (!reply.ok) throw new HttpError("internal", `object ${JSON.stringify(name)}: ${reply.status}`);
      return (await reply.json()).exists;
    }),
  );
  const last = page.names.length ? page.names[page.names.length - 1] : null;
  return Response.json({ names: page.names.filter((_, i) => held[i]), more: page.more, last });
}
