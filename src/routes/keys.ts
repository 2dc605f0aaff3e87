// API keys of the caller's account (admin scope), and accounts (the operator's ADMIN_TOKEN).
import { Hono } from "hono";
import { z } from "zod";
import { randomId } from "../crypto.ts";
import { createAccount, db, insertKey, listKeys, revokeKey } from "../db/queries.ts";
import { ApiError, notFound } from "../errors.ts";
import { SCOPES, makeKey, parseScopes } from "../keys.ts";
import type { AppEnv } from "./app-types.ts";
import { requireApiKey, requireScope } from "./auth.ts";
import { idempotent } from "./idempotency.ts";
import { jsonBody } from "./validate.ts";

const keyRequest = z.strictObject({
  name: z.string().max(100).default(""),
  scopes: z.array(z.enum(SCOPES)).min(1).default(["runs:read", "runs:write"]),
});

export const keys = new Hono<AppEnv>()
  .use("*", requireApiKey)
  .use("*", async (c, next) => {
    if (c.get("operator")) throw new ApiError(403, "forbidden", "ADMIN_TOKEN may only create accounts");
    await next();
  })
  .use("*", requireScope("admin"))
  .post("/", idempotent, async (c) => {
    const req = await jsonBody(c, keyRequest);
    const k = await makeKey();
    const scopes = [...new Set(req.scopes)].join(" ");
    await insertKey(db(c.env.DB), { id: k.id, accountId: c.get("accountId"), name: req.name, prefix: k.prefix, hash: k.hash, scopes });
    // The only time the key itself is ever shown.
    return c.json({ id: k.id, key: k.key, prefix: k.prefix, name: req.name, scopes: parseScopes(scopes) }, 201);
  })
  .get("/", async (c) => {
    const rows = await listKeys(db(c.env.DB), c.get("accountId"));
    return c.json({ keys: rows.map((r) => ({ ...r, scopes: parseScopes(r.scopes) })) });
  })
  .delete("/:keyId", async (c) => {
    const now = Date.now();
    if (!(await revokeKey(db(c.env.DB), c.get("accountId"), c.req.param("keyId"), now))) throw notFound("API key");
    return c.json({ id: c.req.param("keyId"), revokedAt: now });
  });

export const accounts = new Hono<AppEnv>().use("*", requireApiKey).post("/", async (c) => {
  if (!c.get("operator")) throw new ApiError(403, "forbidden", "creating accounts needs ADMIN_TOKEN");
  const req = await jsonBody(c, z.strictObject({ name: z.string().trim().min(1).max(100) }));
  const accountId = randomId("acct");
  const d = db(c.env.DB);
  await createAccount(d, accountId, req.name);
  const k = await makeKey();
  await insertKey(d, { id: k.id, accountId, name: "admin", prefix: k.prefix, hash: k.hash, scopes: SCOPES.join(" ") });
  return c.json({ account: { id: accountId, name: req.name }, key: { id: k.id, key: k.key, prefix: k.prefix, scopes: [...SCOPES] } }, 201);
});
