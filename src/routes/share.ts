// /api/runs/:id/share: create, list and revoke a run's share links (the page itself is routes/page.tsx).
import { Hono } from "hono";
import { z } from "zod";
import { notFound } from "../errors.ts";
import { createShareLink, listShareLinks, MAX_SHARE_SECONDS, revokeShareLink, SHARE_SCOPES } from "../share.ts";
import type { AppEnv } from "./app-types.ts";
import { ownedRun } from "./run-access.ts";
import { jsonBody } from "./validate.ts";

export const shareRequestSchema = z.strictObject({
  scope: z.enum(SHARE_SCOPES).default("view"),
  /** Seconds until the link stops working; without it the link works until revoked. */
  expiresIn: z.number().int().min(60).max(MAX_SHARE_SECONDS).optional(),
});

// Mounted after `runs`, whose middleware (API key, scopes) covers these routes too.
export const share = new Hono<AppEnv>()
  // No Idempotency-Key here: a replayed answer would have to be stored, and with it the token.
  .post("/:id/share", async (c) => {
    const runId = await ownedRun(c);
    const body = c.req.header("content-length") === "0" || !c.req.header("content-type") ? {} : undefined;
    const req = body ? shareRequestSchema.parse(body) : await jsonBody(c, shareRequestSchema);
    const link = await createShareLink(c.env, { runId, accountId: c.get("accountId"), scope: req.scope, expiresIn: req.expiresIn });
    return c.json(link, 201);
  })

  .get("/:id/share", async (c) => c.json({ links: await listShareLinks(c.env, await ownedRun(c)) }))

  .delete("/:id/share/:linkId", async (c) => {
    const runId = await ownedRun(c);
    const link = await revokeShareLink(c.env, runId, c.req.param("linkId"));
    if (!link) throw notFound(`share link ${c.req.param("linkId")}`);
    return c.json(link);
  });
