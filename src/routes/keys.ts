// API keys of the caller's account (admin scope), and accounts (the operator's ADMIN_TOKEN).
import { Hono } from "hono";
import { z } from "zod";
import { randomId } from "../crypto.ts";
import { db } from "../db/client.ts";
import { createAccount, insertKey, listKeys, revokeKey, takeKeyStreamRuns } from "../db/queries.ts";
import { eq } from "drizzle-orm";
import { accounts as accountsTable } from "../db/schema.ts";
import { ApiError, notFound } from "../errors.ts";
import { accountUsage } from "../limits.ts";
import { accountSpend, monthStart } from "../spend.ts";
import { SCOPES, makeKey, parseScopes } from "../keys.ts";
import type { AppEnv } from "./app-types.ts";
import { requireApiKey, requireScope } from "./auth.ts";
import { idempotent } from "./idempotency.ts";
import { jsonBody } from "./validate.ts";

export const keyRequestSchema = z.strictObject({
  name: z.string().max(100).default(""),
  scopes: z.array(z.enum(SCOPES)).min(1).default(["runs:read", "runs:write"]),
});

export const keys = new Hono<AppEnv>()
  .use("*", requireApiKey)
  .use("*", async (c, next) => {
    if (c.get("operator")) throw new ApiError(403, "forbidden", "ADMIN_TOKEN manages accounts, their limits and the stats; this needs an account's API key");
    await next();
  })
  .use("*", requireScope("admin"))
  .post("/", idempotent, async (c) => {
    const req = await jsonBody(c, keyRequestSchema);
    const k = await makeKey();
    const scopes = [...new Set(req.scopes)].join(" ");
    await insertKey(db(c.env.DB), { id: k.id, accountId: c.get("accountId"), name: req.name, prefix: k.prefix, hash: k.hash, scopes });
    // The only time the key itself is ever shown: a replay under the same Idempotency-Key answers without
    // it (D1 keeps no secret), and says what to do if it was lost.
    const shown = { id: k.id, prefix: k.prefix, name: req.name, scopes: parseScopes(scopes) };
    c.set("idempotentReplay", {
      ...shown,
      key: null,
      keyShownOnce: `the key was shown once, in the first answer to this request; if it was lost, revoke ${k.id} (DELETE /api/keys/${k.id}) and make another`,
    });
    return c.json({ ...shown, key: k.key }, 201);
  })
  .get("/", async (c) => {
    const rows = await listKeys(db(c.env.DB), c.get("accountId"));
    return c.json({ keys: rows.map((r) => ({ ...r, scopes: parseScopes(r.scopes) })) });
  })
  .delete("/:keyId", async (c) => {
    const now = Date.now();
    const keyId = c.req.param("keyId");
    const d = db(c.env.DB);
    if (!(await revokeKey(d, c.get("accountId"), keyId, now))) throw notFound("API key");
    // What it holds open ends now: its event streams and live sockets, in each run's object.
    const runIds = await takeKeyStreamRuns(d, keyId);
    const closed = await Promise.all(runIds.map((id) => c.env.RUN_COORDINATOR.get(c.env.RUN_COORDINATOR.idFromName(id)).closeKey(keyId)));
    return c.json({ id: keyId, revokedAt: now, closedSockets: closed.reduce((a, b) => a + b, 0) });
  });

export const accountLimitsSchema = z.strictObject({
  concurrentAttempts: z.number().int().min(1).max(10_000).optional(),
  runsPerHour: z.number().int().min(1).max(100_000).optional(),
  /** The gateway budget of a run that sets none; null goes back to DEFAULT_RUN_BUDGET_USD. */
  runBudgetUsd: z.number().min(0).max(100_000).nullable().optional(),
  /** What the account's runs may spend on gateway model calls per calendar month (UTC); null: ACCOUNT_MONTHLY_BUDGET_USD. */
  monthlyBudgetUsd: z.number().min(0).max(10_000_000).nullable().optional(),
});
export const accountCreateSchema = z.strictObject({ name: z.string().trim().min(1).max(100), limits: accountLimitsSchema.optional() });
export const accountUpdateSchema = z.strictObject({ limits: accountLimitsSchema });

const operatorOnly = (c: { get(k: "operator"): boolean }, what: string) => {
  if (!c.get("operator")) throw new ApiError(403, "forbidden", `${what} needs ADMIN_TOKEN`);
};

export const accounts = new Hono<AppEnv>()
  .use("*", requireApiKey)
  .post("/", async (c) => {
    operatorOnly(c, "creating accounts");
    const req = await jsonBody(c, accountCreateSchema);
    const accountId = randomId("acct");
    const d = db(c.env.DB);
    await createAccount(d, accountId, req.name);
    if (req.limits) await setAccountLimits(d, accountId, req.limits);
    const k = await makeKey();
    await insertKey(d, { id: k.id, accountId, name: "admin", prefix: k.prefix, hash: k.hash, scopes: SCOPES.join(" ") });
    const limits = await limitsOf(c.env, accountId);
    return c.json({ account: { id: accountId, name: req.name, limits }, key: { id: k.id, key: k.key, prefix: k.prefix, scopes: [...SCOPES] } }, 201);
  })

  /** The caller's own account: its limits and how much of them is in use now. */
  .get("/me", async (c) => {
    if (c.get("operator")) throw new ApiError(403, "forbidden", "ADMIN_TOKEN belongs to no account");
    const accountId = c.get("accountId");
    const row = await db(c.env.DB).select({ name: accountsTable.name }).from(accountsTable).where(eq(accountsTable.id, accountId)).get();
    const [u, spend] = await Promise.all([accountUsage(c.env, accountId), accountSpend(c.env, accountId)]);
    return c.json({
      id: accountId,
      name: row?.name ?? "",
      limits: { ...u.limits, runBudgetUsd: spend.runBudgetUsd, monthlyBudgetUsd: spend.monthlyBudgetUsd },
      usage: { activeAttempts: u.activeAttempts, runsLastHour: u.runsLastHour, monthSpentUsd: spend.monthSpentUsd, monthStartedAt: new Date(monthStart()).toISOString() },
    });
  })

  /** The operator sets an account's limits. */
  .patch("/:accountId", async (c) => {
    operatorOnly(c, "changing an account's limits");
    const req = await jsonBody(c, accountUpdateSchema);
    const d = db(c.env.DB);
    const id = c.req.param("accountId");
    if (!(await d.select({ id: accountsTable.id }).from(accountsTable).where(eq(accountsTable.id, id)).get())) throw notFound("account");
    await setAccountLimits(d, id, req.limits);
    return c.json({ id, limits: await limitsOf(c.env, id) });
  });

async function limitsOf(env: AppEnv["Bindings"], accountId: string) {
  const [u, spend] = await Promise.all([accountUsage(env, accountId), accountSpend(env, accountId)]);
  return { ...u.limits, runBudgetUsd: spend.runBudgetUsd, monthlyBudgetUsd: spend.monthlyBudgetUsd };
}

async function setAccountLimits(d: ReturnType<typeof db>, id: string, limits: z.output<typeof accountLimitsSchema>): Promise<void> {
  const set = {
    ...(limits.concurrentAttempts !== undefined ? { maxConcurrentAttempts: limits.concurrentAttempts } : {}),
    ...(limits.runsPerHour !== undefined ? { runsPerHour: limits.runsPerHour } : {}),
    ...(limits.runBudgetUsd !== undefined ? { runBudgetUsd: limits.runBudgetUsd } : {}),
    ...(limits.monthlyBudgetUsd !== undefined ? { monthlyBudgetUsd: limits.monthlyBudgetUsd } : {}),
  };
  if (Object.keys(set).length) await d.update(accountsTable).set(set).where(eq(accountsTable.id, id));
}
