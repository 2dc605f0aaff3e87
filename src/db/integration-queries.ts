// D1 reads and writes for webhooks and Slack (schema: the tables after "Webhooks and Slack" in
// ./schema.ts). Query-builder style on a plain drizzle instance.
import { and, desc, eq, gt, isNull, lt, or, sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import {
  slackLinkCodes,
  slackLinks,
  slackRuns,
  webhookDeliveries,
  webhookEndpoints,
  webhookReceipts,
  type DeliveryStatus,
  type WebhookKind,
} from "./schema.ts";


// ---------------------------------------------------------------- webhook endpoints

export type EndpointRow = typeof webhookEndpoints.$inferSelect;

export async function insertEndpoint(
  d: Db,
  row: { id: string; accountId: string; kind: WebhookKind; name: string; template: unknown; url: string | null; events: string[] | null; requestHash: string | null },
): Promise<boolean> {
  // New endpoints get Standard Webhooks' secret form.
  const inserted = await d.insert(webhookEndpoints).values({ ...row, secretFormat: "standard" }).onConflictDoNothing().returning({ id: webhookEndpoints.id }).get();
  return Boolean(inserted);
}

/** An endpoint that has not been deleted. */
export async function liveEndpoint(d: Db, id: string): Promise<EndpointRow | undefined> {
  return d
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.id, id), isNull(webhookEndpoints.deletedAt)))
    .get();
}

/** Any endpoint by id, deleted or not (an Idempotency-Key replay looks for the one it made). */
export async function endpointById(d: Db, id: string): Promise<EndpointRow | undefined> {
  return d.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id)).get();
}

export async function listEndpoints(d: Db, accountId: string): Promise<EndpointRow[]> {
  return d
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.accountId, accountId), isNull(webhookEndpoints.deletedAt)))
    .orderBy(desc(webhookEndpoints.createdAt), desc(webhookEndpoints.id))
    .all();
}

/** The account's outbound endpoints that take events (not deleted, not disabled), for the run's outbox to fan an event out to. */
export async function outboundEndpoints(d: Db, accountId: string) {
  return d
    .select({ id: webhookEndpoints.id, events: webhookEndpoints.events })
    .from(webhookEndpoints)
    .where(
      and(
        eq(webhookEndpoints.accountId, accountId),
        eq(webhookEndpoints.kind, "outbound"),
        isNull(webhookEndpoints.deletedAt),
        isNull(webhookEndpoints.disabledAt),
      ),
    )
    .all();
}

/** A receiver said 410 Gone: nothing more is sent to the endpoint until its owner enables it again. */
export async function disableEndpoint(d: Db, id: string, at: number, reason: string): Promise<void> {
  await d.update(webhookEndpoints).set({ disabledAt: at, disabledReason: reason }).where(and(eq(webhookEndpoints.id, id), isNull(webhookEndpoints.disabledAt)));
}

export async function enableEndpoint(d: Db, accountId: string, id: string): Promise<boolean> {
  const row = await d
    .update(webhookEndpoints)
    .set({ disabledAt: null, disabledReason: null })
    .where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.accountId, accountId), isNull(webhookEndpoints.deletedAt)))
    .returning({ id: webhookEndpoints.id })
    .get();
  return Boolean(row);
}

export async function deleteEndpoint(d: Db, accountId: string, id: string, now: number): Promise<boolean> {
  const row = await d
    .update(webhookEndpoints)
    .set({ deletedAt: now })
    .where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.accountId, accountId), isNull(webhookEndpoints.deletedAt)))
    .returning({ id: webhookEndpoints.id })
    .get();
  return Boolean(row);
}

/**
 * Bumps the secret's version, in Standard Webhooks' form; the old version keeps working until `graceUntil`
 * (null: it stops at once). The new version, or null when there is no such endpoint.
 */
export async function rotateEndpointSecret(d: Db, accountId: string, id: string, graceUntil: number | null): Promise<number | null> {
  const row = await d
    .update(webhookEndpoints)
    .set({
      secretVersion: sql`${webhookEndpoints.secretVersion} + 1`,
      secretFormat: "standard",
      previousSecretVersion: graceUntil === null ? null : sql`${webhookEndpoints.secretVersion}`,
      previousSecretUntil: graceUntil,
    })
    .where(and(eq(webhookEndpoints.id, id), eq(webhookEndpoints.accountId, accountId), isNull(webhookEndpoints.deletedAt)))
    .returning({ version: webhookEndpoints.secretVersion })
    .get();
  return row?.version ?? null;
}

// ---------------------------------------------------------------- inbound receipts

export type ReceiptRow = typeof webhookReceipts.$inferSelect;

/** Records a delivery the first time it is seen; false when it was seen before. */
export async function claimReceipt(
  d: Db,
  r: { endpointId: string; deliveryId: string; senderDeliveryId: string | null; outcome: "started" | "ignored"; runId: string | null; reason: string | null },
): Promise<boolean> {
  const row = await d.insert(webhookReceipts).values(r).onConflictDoNothing().returning({ id: webhookReceipts.deliveryId }).get();
  return Boolean(row);
}

export async function receipt(d: Db, endpointId: string, deliveryId: string): Promise<ReceiptRow | undefined> {
  return d
    .select()
    .from(webhookReceipts)
    .where(and(eq(webhookReceipts.endpointId, endpointId), eq(webhookReceipts.deliveryId, deliveryId)))
    .get();
}

export async function listReceipts(d: Db, endpointId: string, limit: number, before?: { createdAt: number; id: string }) {
  const conditions = [eq(webhookReceipts.endpointId, endpointId)];
  if (before) {
    conditions.push(
      or(lt(webhookReceipts.createdAt, before.createdAt), and(eq(webhookReceipts.createdAt, before.createdAt), lt(webhookReceipts.deliveryId, before.id)))!,
    );
  }
  return d
    .select()
    .from(webhookReceipts)
    .where(and(...conditions))
    .orderBy(desc(webhookReceipts.createdAt), desc(webhookReceipts.deliveryId))
    .limit(limit)
    .all();
}

// ---------------------------------------------------------------- outbound deliveries

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;

export interface DeliveryRecord {
  id: string;
  endpointId: string;
  accountId: string;
  runId: string;
  seq: number;
  eventType: string;
  payload: string;
  status: DeliveryStatus;
  tries: number;
  lastStatus: number | null;
  lastError: string | null;
  nextTryAt: number | null;
  createdAt: number;
  deliveredAt: number | null;
}

/** Writes deliveries as the run's outbox has them (upserts, so writing one again is harmless). */
export async function saveDeliveries(d: Db, rows: DeliveryRecord[]): Promise<void> {
  const statements = rows.map((r) =>
    d
      .insert(webhookDeliveries)
      .values(r)
      .onConflictDoUpdate({
        target: webhookDeliveries.id,
        set: {
          status: r.status,
          tries: r.tries,
          lastStatus: r.lastStatus,
          lastError: r.lastError,
          nextTryAt: r.nextTryAt,
          deliveredAt: r.deliveredAt,
        },
      }),
  );
  const [first, ...rest] = statements;
  if (first) await d.batch([first, ...rest]);
}

export async function listDeliveries(d: Db, endpointId: string, limit: number, before?: { createdAt: number; id: string }) {
  const conditions = [eq(webhookDeliveries.endpointId, endpointId)];
  if (before) {
    conditions.push(
      or(lt(webhookDeliveries.createdAt, before.createdAt), and(eq(webhookDeliveries.createdAt, before.createdAt), lt(webhookDeliveries.id, before.id)))!,
    );
  }
  return d
    .select()
    .from(webhookDeliveries)
    .where(and(...conditions))
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(limit)
    .all();
}

export async function delivery(d: Db, endpointId: string, id: string): Promise<DeliveryRow | undefined> {
  return d
    .select()
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.endpointId, endpointId), eq(webhookDeliveries.id, id)))
    .get();
}

/** A manual redelivery's try: counted, and its outcome recorded (a success marks the delivery delivered). */
export async function recordRedelivery(d: Db, id: string, r: { ok: boolean; status: number | null; error: string | null; at: number }): Promise<void> {
  await d
    .update(webhookDeliveries)
    .set({
      tries: sql`${webhookDeliveries.tries} + 1`,
      lastStatus: r.status,
      lastError: r.error,
      ...(r.ok ? { status: "delivered" as const, deliveredAt: r.at } : {}),
    })
    .where(eq(webhookDeliveries.id, id));
}

// ---------------------------------------------------------------- Slack

/** The account a Slack user's requests belong to: the user's own link first, then their workspace's. */
export async function slackAccount(d: Db, teamId: string, userId: string): Promise<string | null> {
  const rows = await d
    .select({ accountId: slackLinks.accountId, userId: slackLinks.userId })
    .from(slackLinks)
    .where(and(eq(slackLinks.teamId, teamId), or(eq(slackLinks.userId, userId), eq(slackLinks.userId, ""))))
    .all();
  return (rows.find((r) => r.userId === userId) ?? rows.find((r) => r.userId === ""))?.accountId ?? null;
}

export async function insertLinkCode(d: Db, row: { hash: string; accountId: string; scope: "team" | "user"; expiresAt: number }): Promise<void> {
  await d.insert(slackLinkCodes).values(row);
}

/** Uses a link code once: its account and scope, or null when it is unknown, used or expired. */
/** A link code's scope while it can still be redeemed (without using it), or undefined. */
export async function linkCodeScope(d: Db, hash: string, now: number) {
  const row = await d
    .select({ scope: slackLinkCodes.scope })
    .from(slackLinkCodes)
    .where(and(eq(slackLinkCodes.hash, hash), isNull(slackLinkCodes.usedAt), gt(slackLinkCodes.expiresAt, now)))
    .get();
  return row?.scope;
}

export async function redeemLinkCode(d: Db, hash: string, now: number) {
  return d
    .update(slackLinkCodes)
    .set({ usedAt: now })
    .where(and(eq(slackLinkCodes.hash, hash), isNull(slackLinkCodes.usedAt), gt(slackLinkCodes.expiresAt, now)))
    .returning({ accountId: slackLinkCodes.accountId, scope: slackLinkCodes.scope })
    .get();
}

/**
 * Links a workspace (userId "") or a user to an account. Refused ("taken") when that workspace or user
 * is linked to another account already; linking again to the same account is a no-op.
 */
export async function linkSlack(d: Db, link: { id: string; accountId: string; teamId: string; userId: string }): Promise<"linked" | "taken"> {
  await d.insert(slackLinks).values(link).onConflictDoNothing();
  const row = await d
    .select({ accountId: slackLinks.accountId })
    .from(slackLinks)
    .where(and(eq(slackLinks.teamId, link.teamId), eq(slackLinks.userId, link.userId)))
    .get();
  return row?.accountId === link.accountId ? "linked" : "taken";
}

export async function listSlackLinks(d: Db, accountId: string) {
  return d
    .select({ id: slackLinks.id, teamId: slackLinks.teamId, userId: slackLinks.userId, createdAt: slackLinks.createdAt })
    .from(slackLinks)
    .where(eq(slackLinks.accountId, accountId))
    .orderBy(desc(slackLinks.createdAt))
    .all();
}

export async function deleteSlackLink(d: Db, accountId: string, id: string): Promise<boolean> {
  const row = await d
    .delete(slackLinks)
    .where(and(eq(slackLinks.id, id), eq(slackLinks.accountId, accountId)))
    .returning({ id: slackLinks.id })
    .get();
  return Boolean(row);
}

export type SlackRunRow = typeof slackRuns.$inferSelect;

/** Records where a Slack-started run reports; false when the run was recorded before (a retried command). */
export async function claimSlackRun(d: Db, row: { runId: string; accountId: string; teamId: string; channelId: string; userId: string }): Promise<boolean> {
  const inserted = await d.insert(slackRuns).values(row).onConflictDoNothing().returning({ runId: slackRuns.runId }).get();
  return Boolean(inserted);
}

export async function slackRun(d: Db, runId: string): Promise<SlackRunRow | undefined> {
  return d.select().from(slackRuns).where(eq(slackRuns.runId, runId)).get();
}

export async function setSlackRunShare(d: Db, runId: string, sealed: string): Promise<void> {
  await d.update(slackRuns).set({ shareUrlSealed: sealed }).where(eq(slackRuns.runId, runId));
}
