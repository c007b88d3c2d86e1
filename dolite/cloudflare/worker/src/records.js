// The binary framing of storage calls ("records") and the storage limits checked on decode.
//
// All integers are unsigned 32-bit big-endian: count, then per record keyLength, key (UTF-8),
// valueLength, value. valueLength 0xFFFFFFFF means "no value": a bare key, or "expect absent"
// in commit.

import { HttpError, badRequest } from "./http.js";

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

// The largest well-formed call: a commit of 128 writes (or deletes) and 128 expectations, every
// key and value at its limit, in three lists. Any bigger body is refused unread.
export const MAX_REQUEST_BYTES =
  3 * 4 + 2 * LIMITS.maxKeysPerCall * (8 + LIMITS.maxKeyBytes + LIMITS.maxValueBytes);

const NONE = 0xffffffff;
const RECORD_HEADER = 8; // keyLength + valueLength
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

export const limitExceeded = (message) => new HttpError("limit_exceeded", message);

// What each list of a call holds: entries need a value, keys must not carry one, expectations
// may have either (a bare key expects the key absent).
const VALUES = { entries: "required", keys: "forbidden", expect: "optional" };

/**
 * Decode consecutive record lists from `buffer`, one per item of `kinds` (a key of VALUES);
 * returns an array of [key, ArrayBuffer|null][]. Malformed input is bad_request, input over a
 * storage limit is limit_exceeded; nothing is decoded past the first problem.
 */
export function decodeRecordLists(buffer, kinds) {
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
    at += n;
    return buffer.slice(at - n, at);
  };
  const lists = [];
  for (const kind of kinds) {
    const count = u32();
    // A count the body cannot hold is not a record list at all (JSON, text, garbage): 400,
    // not a limit error. Every record takes at least its two length fields.
    if (count > (view.byteLength - at) / RECORD_HEADER) {
      throw badRequest(`request body is not a record list: it declares ${count} records in ${view.byteLength} bytes`);
    }
    if (count > LIMITS.maxKeysPerCall) {
      throw limitExceeded(`a call names ${count} keys, over the limit of ${LIMITS.maxKeysPerCall}`);
    }
    const records = [];
    for (let j = 0; j < count; j++) {
      const keyLength = u32();
      const key = decodeKey(keyLength, bytes, at);
      at += keyLength;
      const valueLength = u32();
      let value = null;
      if (valueLength !== NONE) {
        if (valueLength > LIMITS.maxValueBytes) {
          throw limitExceeded(
            `value of ${JSON.stringify(key)} is ${valueLength} bytes, over the limit of ${LIMITS.maxValueBytes}`,
          );
        }
        value = take(valueLength);
      }
      checkValuePresence(kind, key, value);
      records.push([key, value]);
    }
    lists.push(records);
  }
  if (at !== view.byteLength) throw badRequest("trailing bytes after request body");
  return lists;
}

function decodeKey(keyLength, bytes, at) {
  if (keyLength === 0) throw badRequest("storage key is empty");
  if (keyLength > LIMITS.maxKeyBytes) {
    throw limitExceeded(`storage key of ${keyLength} bytes exceeds the limit of ${LIMITS.maxKeyBytes}`);
  }
  if (at + keyLength > bytes.byteLength) throw badRequest("truncated request body");
  try {
    return fromUtf8.decode(bytes.subarray(at, at + keyLength));
  } catch {
    throw badRequest("storage key is not valid UTF-8");
  }
}

function checkValuePresence(kind, key, value) {
  if (VALUES[kind] === "required" && value === null) throw badRequest(`a write of ${JSON.stringify(key)} has no value`);
  if (VALUES[kind] === "forbidden" && value !== null) throw badRequest(`the key ${JSON.stringify(key)} carries a value`);
}

/** Encode [key, ArrayBuffer][] (or a Map) as one record list. */
export function encodeRecords(entries) {
  const parts = [];
  let size = 4;
  for (const [key, value] of entries) {
    const k = utf8.encode(key);
    const v = value === undefined || value === null ? null : new Uint8Array(value);
    parts.push([k, v]);
    size += RECORD_HEADER + k.byteLength + (v ? v.byteLength : 0);
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
