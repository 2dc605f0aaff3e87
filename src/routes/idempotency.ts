// Idempotency-Key on creating POSTs: the same key within 24 hours answers the first answer again (with
// `idempotent-replayed: true`) and creates nothing. The same key with another request is refused; a
// key whose first request is still being answered gets 409. Server errors and 429s free the key for a retry.
// An answer that holds a secret (a new API key) is never stored: its route sets `idempotentReplay`, the
// answer without the secret, and that is what a replay gets. Expired rows go with the cron sweep.
import { createMiddleware } from "hono/factory";
import { sha256Hex } from "../crypto.ts";
import { db } from "../db/client.ts";
import { claimIdempotencyKey, idempotencyRecord, releaseIdempotencyKey, settleIdempotencyKey } from "../db/queries.ts";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./app-types.ts";

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60_000;
const TTL_MS = IDEMPOTENCY_TTL_MS;

export const idempotent = createMiddleware<AppEnv>(async (c, next) => {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return next();
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters");
  }
  const d = db(c.env.DB);
  const accountId = c.get("accountId");
  const route = `${c.req.method} ${new URL(c.req.url).pathname}`;
  const requestHash = await sha256Hex(`${route}\n${await c.req.text()}`);

  let record = await idempotencyRecord(d, accountId, key);
  if (record && Date.now() - record.createdAt > TTL_MS) {
    await releaseIdempotencyKey(d, accountId, key);
    record = undefined;
  }
  if (!record && !(await claimIdempotencyKey(d, accountId, key, route, requestHash))) record = await idempotencyRecord(d, accountId, key);
  if (record) {
    if (record.requestHash !== requestHash) {
      throw new ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request");
    }
    if (record.status === null || record.response === null) {
      throw new ApiError(409, "idempotency_in_progress", "a request with this Idempotency-Key is still being answered");
    }
    return new Response(record.response, {
      status: record.status,
      headers: { "content-type": "application/json", "idempotent-replayed": "true" },
    });
  }

  try {
    await next();
  } catch (err) {
    await releaseIdempotencyKey(d, accountId, key);
    throw err;
  }
  // A server error or a rate limit is not an answer to keep: the same key may try again.
  if (c.res.status >= 500 || c.res.status === 429) await releaseIdempotencyKey(d, accountId, key);
  else {
    const replay = c.get("idempotentReplay");
    await settleIdempotencyKey(d, accountId, key, c.res.status, replay === undefined ? await c.res.clone().text() : JSON.stringify(replay));
  }
});
