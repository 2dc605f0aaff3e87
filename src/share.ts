// Share links: `/r/<token>` shows one run to whoever holds the token, without an API key.
// A token is 256 random bits; only its SHA-256 is stored, so a leaked database names no working link.
// A view link shows the run; a control link also lets its holder pick winners, start rounds and cancel.
import { and, desc, eq } from "drizzle-orm";
import { base64url, randomId, sha256Hex } from "./crypto.ts";

import { db } from "./db/client.ts";
import { runs, shareLinks, type ShareScope } from "./db/schema.ts";
import type { Env } from "./env.ts";

export const SHARE_SCOPES: ShareScope[] = ["view", "control"];
/** The longest a link may live. */
export const MAX_SHARE_SECONDS = 365 * 24 * 3600;
/** How long a link lives when it is made without `expiresIn` (SHARE_LINK_DAYS): a forgotten link dies too. */
export const DEFAULT_SHARE_DAYS = 30;

export function defaultShareSeconds(env: Pick<Env, "SHARE_LINK_DAYS">): number {
  const days = Number(env.SHARE_LINK_DAYS ?? DEFAULT_SHARE_DAYS);
  return Number.isFinite(days) && days > 0 ? Math.min(MAX_SHARE_SECONDS, Math.round(days * 24 * 3600)) : DEFAULT_SHARE_DAYS * 24 * 3600;
}

const TOKEN_RE = /^mss_[A-Za-z0-9_-]{43}$/;

export interface ShareLinkView {
  id: string;
  runId: string;
  scope: ShareScope;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface CreatedShareLink extends ShareLinkView {
  /** The page's address; shown once, at creation. */
  url: string;
}

export const pageUrl = (env: Pick<Env, "PUBLIC_URL">, token: string) => `${env.PUBLIC_URL.replace(/\/$/, "")}/r/${token}`;

export async function createShareLink(
  env: Env,
  input: { runId: string; accountId: string; scope: ShareScope; expiresIn?: number | undefined },
): Promise<CreatedShareLink> {
  const token = `mss_${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
  const now = Date.now();
  const row = {
    id: randomId("shr"),
    runId: input.runId,
    accountId: input.accountId,
    scope: input.scope,
    hash: await sha256Hex(token),
    createdAt: now,
    expiresAt: now + (input.expiresIn ?? defaultShareSeconds(env)) * 1000,
    revokedAt: null,
  };
  await db(env.DB).insert(shareLinks).values(row);
  const { hash: _hash, accountId: _account, ...view } = row;
  return { ...view, url: pageUrl(env, token) };
}

export async function listShareLinks(env: Env, runId: string): Promise<ShareLinkView[]> {
  return db(env.DB)
    .select({
      id: shareLinks.id,
      runId: shareLinks.runId,
      scope: shareLinks.scope,
      createdAt: shareLinks.createdAt,
      expiresAt: shareLinks.expiresAt,
      revokedAt: shareLinks.revokedAt,
    })
    .from(shareLinks)
    .where(eq(shareLinks.runId, runId))
    .orderBy(desc(shareLinks.createdAt));
}

/** Revokes the link; false when the run has no such link. Revoking twice is not an error. */
export async function revokeShareLink(env: Env, runId: string, id: string): Promise<ShareLinkView | null> {
  const d = db(env.DB);
  const [row] = await d.select().from(shareLinks).where(and(eq(shareLinks.id, id), eq(shareLinks.runId, runId)));
  if (!row) return null;
  const revokedAt = row.revokedAt ?? Date.now();
  if (row.revokedAt === null) await d.update(shareLinks).set({ revokedAt }).where(eq(shareLinks.id, id));
  // Pages already open on the link stop getting the run. Every time: a revoke whose first try failed
  // here is retried by its caller, and closing twice is harmless.
  await env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(runId)).closeLink(id);
  return { id: row.id, runId: row.runId, scope: row.scope, createdAt: row.createdAt, expiresAt: row.expiresAt, revokedAt };
}

export interface ResolvedShare {
  linkId: string;
  runId: string;
  accountId: string;
  scope: ShareScope;
  expiresAt: number | null;
}

/** The run a token opens, if the link is live: never revoked, not expired, its run still there. */
export async function resolveShareToken(env: Env, token: string): Promise<ResolvedShare | null> {
  if (!TOKEN_RE.test(token)) return null;
  const hash = await sha256Hex(token);
  const [row] = await db(env.DB)
    .select({
      id: shareLinks.id,
      runId: shareLinks.runId,
      accountId: shareLinks.accountId,
      scope: shareLinks.scope,
      expiresAt: shareLinks.expiresAt,
      revokedAt: shareLinks.revokedAt,
      runAccount: runs.accountId,
    })
    .from(shareLinks)
    .innerJoin(runs, eq(runs.id, shareLinks.runId))
    .where(eq(shareLinks.hash, hash));
  if (!row || row.revokedAt !== null || row.runAccount !== row.accountId) return null;
  if (row.expiresAt !== null && row.expiresAt <= Date.now()) return null;
  return { linkId: row.id, runId: row.runId, accountId: row.accountId, scope: row.scope, expiresAt: row.expiresAt };
}
