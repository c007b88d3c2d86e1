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
//
// A statement may carry `expectRows: n`: it must return exactly n rows, or the whole batch
// rolls back and the answer is 409 conflict. With `UPDATE ... WHERE id = ? AND v = ?
// RETURNING id` that is a compare-and-set, so a read-then-write transaction takes two
// requests (read, then a guarded batch), the fastest correct form the benchmark compares
// dolite's interactive transactions with. rowsRead/rowsWritten are the cursors' own
// counters (`cursor.rowsRead`, `cursor.rowsWritten`), what Cloudflare bills.

import { DurableObject } from "cloudflare:workers";
import {
  HttpError, answering, authenticate, badRequest, objectName, readBody, requireMethod,
} from "./http.js";
import storage, { DoliteObject, DoliteRegistry } from "./worker.js";

export { DoliteObject, DoliteRegistry };

const MAX_NATIVE_BODY = 8 << 20;

const STATEMENT_FIELDS = ["sql", "params", "expectRows"];

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
    if (item.expectRows !== undefined && !(Number.isInteger(item.expectRows) && item.expectRows >= 0)) {
      throw badRequest("`expectRows` is a non-negative integer");
    }
    const unknown = Object.keys(item).filter((key) => !STATEMENT_FIELDS.includes(key));
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
        for (const { sql, params = [], expectRows } of batch) {
          const cursor = this.ctx.storage.sql.exec(sql, ...params);
          const rows = cursor.raw().toArray(); // consume before reading the counters
          rowsRead += cursor.rowsRead;
          rowsWritten += cursor.rowsWritten;
          if (expectRows !== undefined && rows.length !== expectRows) {
            throw new HttpError("conflict", `expected ${expectRows} rows, got ${rows.length}: ${sql}`);
          }
          last = { columns: cursor.columnNames, rows };
        }
        return { ...last, rowsRead, rowsWritten };
      };
      try {
        // A guard must be able to undo the statement it checks, so it runs in a transaction too.
        const atomic = batch.length > 1 || batch[0].expectRows !== undefined;
        return Response.json(atomic ? this.ctx.storage.transactionSync(run) : run());
      } catch (err) {
        if (err instanceof HttpError) throw err;
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
