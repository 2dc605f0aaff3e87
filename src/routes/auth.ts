// Bearer API keys. Keys are looked up by their SHA-256 hash; in local mode MULTISHOT_DEV_API_KEY is also
// a key of the local account (compared timing-safely).
import { createMiddleware } from "hono/factory";
import { sha256Hex, timingSafeEqualStrings } from "../crypto.ts";
import { accountForKeyHash, db, ensureLocalAccount } from "../db/queries.ts";
import { isLocalMode } from "../env.ts";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./app-types.ts";

export const requireApiKey = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new ApiError(401, "unauthorized", "missing API key: send Authorization: Bearer <key>");
  const key = match[1]!;
  const d = db(c.env.DB);
  const devKey = c.env.MULTISHOT_DEV_API_KEY;
  let accountId: string | null = null;
  if (devKey && isLocalMode(c.env) && (await timingSafeEqualStrings(key, devKey))) {
    accountId = await ensureLocalAccount(d);
  } else {
    accountId = await accountForKeyHash(d, await sha256Hex(key));
  }
  if (!accountId) throw new ApiError(401, "unauthorized", "invalid API key");
  c.set("accountId", accountId);
  await next();
});
