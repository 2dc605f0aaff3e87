// Bearer API keys. A key is found by its visible prefix and its SHA-256 compared timing-safely; revoked
// keys are refused. In local mode MULTISHOT_DEV_API_KEY is also a key of the local account (every scope).
// ADMIN_TOKEN, when set, is the operator's: it creates accounts, sets their limits and reads the admin
// stats; it is no account's key (it starts, reads and picks nothing).
import { createMiddleware } from "hono/factory";
import { sha256Hex, timingSafeEqualStrings } from "../crypto.ts";
import { db } from "../db/client.ts";
import { ensureLocalAccount, KEY_TOUCH_INTERVAL_MS, keysWithPrefix, touchKey } from "../db/queries.ts";
import { isLocalMode } from "../env.ts";
import { ApiError } from "../errors.ts";
import { SCOPES, keyPrefix, parseScopes, type Scope } from "../keys.ts";
import type { AppEnv } from "./app-types.ts";

export const requireApiKey = createMiddleware<AppEnv>(async (c, next) => {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
  if (!match) throw new ApiError(401, "unauthorized", "missing API key: send Authorization: Bearer <key>");
  const key = match[1]!;
  const d = db(c.env.DB);

  if (c.env.ADMIN_TOKEN && (await timingSafeEqualStrings(key, c.env.ADMIN_TOKEN))) {
    c.set("operator", true);
    c.set("keyId", null);
    c.set("accountId", "");
    c.set("scopes", []);
    return next();
  }
  c.set("operator", false);
  c.set("keyId", null);
  const devKey = c.env.MULTISHOT_DEV_API_KEY;
  if (devKey && isLocalMode(c.env) && (await timingSafeEqualStrings(key, devKey))) {
    c.set("accountId", await ensureLocalAccount(d));
    c.set("scopes", [...SCOPES]);
    return next();
  }
  const prefix = keyPrefix(key);
  if (prefix) {
    const hash = await sha256Hex(key);
    for (const row of await keysWithPrefix(d, prefix)) {
      if (!(await timingSafeEqualStrings(hash, row.hash))) continue;
      if (row.revokedAt !== null) throw new ApiError(401, "unauthorized", "this API key has been revoked");
      c.set("accountId", row.accountId);
      c.set("keyId", row.id);
      c.set("scopes", parseScopes(row.scopes));
      if (row.lastUsedAt === null || Date.now() - row.lastUsedAt > KEY_TOUCH_INTERVAL_MS) {
        c.executionCtx.waitUntil(touchKey(d, row.id).catch(() => {}));
      }
      return next();
    }
  }
  throw new ApiError(401, "unauthorized", "invalid API key");
});

/** The key must carry this scope (admin implies every other). */
export const requireScope = (scope: Scope) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const scopes = c.get("scopes");
    if (!scopes.includes(scope) && !scopes.includes("admin")) {
      if (c.get("operator")) throw new ApiError(403, "forbidden", "ADMIN_TOKEN belongs to no account: runs, keys and webhooks need an account's API key");
      throw new ApiError(403, "forbidden", `this API key lacks the ${scope} scope`);
    }
    await next();
  });

/** Reads need runs:read; anything else needs runs:write. */
export const requireRunScope = createMiddleware<AppEnv>(async (c, next) => {
  const scope: Scope = c.req.method === "GET" || c.req.method === "HEAD" ? "runs:read" : "runs:write";
  return requireScope(scope)(c, next);
});
