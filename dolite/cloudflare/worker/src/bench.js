// The benchmark build of the dolite Worker: the storage Worker (worker.js) plus a baseline
// that runs SQL natively in a SQLite-backed Durable Object. NOT a product API, and never
// deployed: only workerd-bench.capnp loads this module (wrangler.toml deploys worker.js), so
// `dolite cloudflare bench` can compare dolite's page store with the same workload in
// `ctx.storage.sql` on local workerd.
//
//   POST /v1/native/{name}/sql   body: JSON {sql, params} or {batch: [{sql, params}, ...]}
//                                -> JSON {columns, rows, rowsRead, rowsWritten}
//
// Every other route is the storage Worker's. The native route needs the same shared secret,
// has no limits beyond the runtime's own and a body cap, and offers no schema safety.
//
// {"sql": "...", "params": [...]} runs one statement (its writes are one implicit
// transaction, made durable before the reply); {"batch": [{"sql", "params"}, ...]} runs
// several in one `transactionSync`: all or nothing. The reply describes the last statement:
// {columns, rows (arrays)}, with rowsRead and rowsWritten summed over the batch. Params are
// JSON scalars; a SQL error is bad_request.

import { DurableObject } from "cloudflare:workers";
import {
  HttpError, answering, authenticate, badRequest, objectName, readBody, requireMethod,
} from "./http.js";
import storage, { DoliteObject, DoliteRegistry } from "./worker.js";

export { DoliteObject, DoliteRegistry };

const MAX_NATIVE_BODY = 8 << 20;

/** The statements of a request body, checked: each {sql: string, params?: array}, nothing else. */
function statements(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    throw badRequest("body is not JSON");
  }
  const isBatch = Array.isArray(message?.batch);
  if (isBatch && Object.keys(message).length !== 1) throw badRequest("a batch body holds only `batch`");
  const batch = isBatch ? message.batch : [message];
  for (const item of batch) {
    if (typeof item?.sql !== "string") throw badRequest("each statement needs a string `sql`");
    if (item.params !== undefined && !Array.isArray(item.params)) throw badRequest("`params` is an array");
    const unknown = Object.keys(item).filter((key) => key !== "sql" && key !== "params");
    if (unknown.length) throw badRequest(`unknown statement fields: ${unknown.join(", ")}`);
  }
  return batch;
}

export class NativeSqlObject extends DurableObject {
  async fetch(request) {
    return answering(async () => {
      const batch = statements(new TextDecoder().decode(await request.arrayBuffer()));
      const run = () => {
        let last = null;
        let rowsRead = 0;
        let rowsWritten = 0;
        for (const { sql, params = [] } of batch) {
          const cursor = this.ctx.storage.sql.exec(sql, ...params);
          const rows = cursor.raw().toArray(); // consume before reading the counters
          rowsRead += cursor.rowsRead;
          rowsWritten += cursor.rowsWritten;
          last = { columns: cursor.columnNames, rows };
        }
        return { ...last, rowsRead, rowsWritten };
      };
      try {
        return Response.json(batch.length > 1 ? this.ctx.storage.transactionSync(run) : run());
      } catch (err) {
        throw badRequest(`SQL error: ${String(err?.message ?? err)}`);
      }
    });
  }
}

export default {
  async fetch(request, env) {
    const native = new URL(request.url).pathname.match(/^\/v1\/native\/([^/]+)\/sql$/);
    if (!native) return storage.fetch(request, env);
    return answering(async () => {
      await authenticate(request, env);
      requireMethod(request, "POST", "sql");
      if (!env.NATIVE) throw new HttpError("not_found", "this Worker has no NATIVE binding");
      const stub = env.NATIVE.get(env.NATIVE.idFromName(objectName(native[1])));
      return stub.fetch("https://native/sql", { method: "POST", body: await readBody(request, MAX_NATIVE_BODY) });
    });
  },
};
