// Webhooks: `/api/webhooks…` where an account manages its endpoints (admin scope), and
// `POST /hooks/:endpointId` where a signed payload starts a run.
//
// An inbound endpoint turns a payload into a run through its template; an outbound endpoint receives
// the account's run events (delivered by each run's object, see src/integrations/outbox.ts). Either
// way the endpoint's secret is derived from MULTISHOT_SIGNING_SECRET and the endpoint's id, so D1 holds
// nothing that signs; it is shown once, when the endpoint is made (or its secret rotated).
import { Hono, type Context } from "hono";
import { z } from "zod";
import { randomId, sha256Hex } from "../crypto.ts";
import { db } from "../db/client.ts";
import {
  claimReceipt,
  deleteEndpoint,
  delivery,
  enableEndpoint,
  endpointById,
  insertEndpoint,
  listDeliveries,
  listEndpoints,
  listReceipts,
  liveEndpoint,
  receipt,
  recordRedelivery,
  rotateEndpointSecret,
  type DeliveryRow,
  type EndpointRow,
} from "../db/integration-queries.ts";
import { isLocalMode, type Env } from "../env.ts";
import { ApiError, notFound } from "../errors.ts";
import { sendDelivery } from "../integrations/delivery.ts";
import { DEFAULT_ROTATION_GRACE_HOURS, endpointKeys, inGrace } from "../integrations/endpoint-secrets.ts";
import { refusedDestination } from "../integrations/destinations.ts";
import { derivedId, derivedRunId, webhookSecret } from "../integrations/derive.ts";
import { OUTBOUND_EVENTS } from "../integrations/events.ts";
import { verifyHookRequest } from "../integrations/signatures.ts";
import { renderTemplate, resolveTemplate, templateSchema, type TemplateInput } from "../integrations/templates.ts";
import { runRequestSchema } from "../run-request.ts";
import { startRun } from "../runs/start.ts";
import type { AppEnv } from "./app-types.ts";
import { requireApiKey, requireScope } from "./auth.ts";
import { MAX_BODY_BYTES, jsonBody } from "./validate.ts";

const ENDPOINT_ID = /^wh_[a-z2-7]{20}$/;
const DELIVERY_ID = /^[\x21-\x7e]{1,200}$/;

export const webhookCreateSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("inbound"),
    name: z.string().max(100).default(""),
    template: templateSchema,
  }),
  z.strictObject({
    kind: z.literal("outbound"),
    name: z.string().max(100).default(""),
    url: z
      .string()
      .max(2000)
      .url()
      .refine((u) => /^https?:\/\//i.test(u), "only http(s) URLs"),
    events: z.array(z.enum(OUTBOUND_EVENTS)).min(1).default([...OUTBOUND_EVENTS]),
  }),
]);

/** An endpoint as the API shows it: never its secret (only the answers that make one carry it). */
function endpointView(env: Env, e: EndpointRow) {
  const common = {
    id: e.id,
    kind: e.kind,
    name: e.name,
    secretVersion: e.secretVersion,
    secretFormat: e.secretFormat,
    /** During a rotation's grace, until when the previous secret still signs and verifies. */
    previousSecretValidUntil: inGrace(e) ? e.previousSecretUntil : null,
    createdAt: e.createdAt,
    deletedAt: e.deletedAt,
  };
  return e.kind === "inbound"
    ? { ...common, hookUrl: `${env.PUBLIC_URL.replace(/\/$/, "")}/hooks/${e.id}`, template: e.template as TemplateInput }
    : { ...common, url: e.url, events: e.events, disabledAt: e.disabledAt, disabledReason: e.disabledReason };
}

export const rotateRequestSchema = z.strictObject({
  /** How long the previous secret keeps signing and verifying beside the new one (0: it stops at once). */
  graceHours: z.number().min(0).max(7 * 24).default(DEFAULT_ROTATION_GRACE_HOURS),
});

function deliveryView(d: DeliveryRow, withPayload = false) {
  return {
    id: d.id,
    runId: d.runId,
    event: d.eventType,
    seq: d.seq,
    status: d.status,
    tries: d.tries,
    lastStatus: d.lastStatus,
    lastError: d.lastError,
    nextTryAt: d.nextTryAt,
    createdAt: d.createdAt,
    deliveredAt: d.deliveredAt,
    ...(withPayload ? { payload: JSON.parse(d.payload) as unknown } : {}),
  };
}

async function ownedEndpoint(c: Context<AppEnv>): Promise<EndpointRow> {
  const id = c.req.param("id") ?? "";
  const e = ENDPOINT_ID.test(id) ? await liveEndpoint(db(c.env.DB), id) : undefined;
  if (!e || e.accountId !== c.get("accountId")) throw notFound("webhook endpoint");
  return e;
}

function pageParams(c: Context<AppEnv>) {
  const limit = Number(c.req.query("limit") ?? "20");
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new ApiError(400, "invalid_parameter", "limit must be an integer from 1 to 100");
  const raw = c.req.query("cursor");
  if (!raw) return { limit };
  const m = /^(\d+)\.([\x21-\x7e]{1,200})$/.exec(raw);
  if (!m) throw new ApiError(400, "invalid_parameter", "cursor is not one this API gave out");
  return { limit, cursor: { createdAt: Number(m[1]), id: m[2]! } };
}

export const webhooks = new Hono<AppEnv>()
  // ---------------------------------------------------------------- management (admin scope)

  .use("/api/webhooks/*", requireApiKey, async (c, next) => {
    if (c.get("operator")) throw new ApiError(403, "forbidden", "ADMIN_TOKEN manages accounts, their limits and the stats; this needs an account's API key");
    await next();
  })
  .use("/api/webhooks/*", requireScope("admin"))

  // Idempotency-Key is honoured here without the shared middleware, which would store the answer (and
  // so the secret) in D1: under a key, the endpoint's id is derived from the account and the key, so a
  // repeat finds the endpoint it made and answers it again, secret included, since that too is derived.
  .post("/api/webhooks", async (c) => {
    const idemKey = c.req.header("idempotency-key");
    if (idemKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idemKey)) {
      throw new ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters");
    }
    const req = await jsonBody(c, webhookCreateSchema);
    if (req.kind === "outbound" && !isLocalMode(c.env) && !/^https:\/\//i.test(req.url)) {
      throw new ApiError(400, "validation_failed", "url: events are only sent to https URLs");
    }
    if (req.kind === "outbound") {
      const refused = await refusedDestination(c.env, req.url);
      if (refused) throw new ApiError(400, "validation_failed", `url: events are not sent there: ${refused}`);
    }
    const accountId = c.get("accountId");
    const d = db(c.env.DB);
    const id = idemKey ? await derivedId(c.env, "wh", `${accountId}\n${idemKey}`) : randomId("wh");
    const requestHash = idemKey ? await sha256Hex(await c.req.text()) : null;
    const made = await insertEndpoint(d, {
      id,
      accountId,
      kind: req.kind,
      name: req.name,
      template: req.kind === "inbound" ? req.template : null,
      url: req.kind === "outbound" ? req.url : null,
      events: req.kind === "outbound" ? req.events : null,
      requestHash,
    });
    const row = await endpointById(d, id);
    if (!row || row.accountId !== accountId) throw new ApiError(500, "internal", "the endpoint was not stored");
    if (!made && row.requestHash !== requestHash) {
      throw new ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request");
    }
    const body = { ...endpointView(c.env, row), secret: await webhookSecret(c.env, row.id, row.secretVersion, row.secretFormat) };
    return c.json(body, 201, made ? {} : { "idempotent-replayed": "true" });
  })

  .get("/api/webhooks", async (c) => c.json({ endpoints: (await listEndpoints(db(c.env.DB), c.get("accountId"))).map((e) => endpointView(c.env, e)) }))

  .get("/api/webhooks/:id", async (c) => c.json(endpointView(c.env, await ownedEndpoint(c))))

  .delete("/api/webhooks/:id", async (c) => {
    const e = await ownedEndpoint(c);
    await deleteEndpoint(db(c.env.DB), e.accountId, e.id, Date.now());
    return c.json({ id: e.id, deleted: true });
  })

  /**
   * A new secret (Standard Webhooks' form), shown this once. The old one keeps signing deliveries beside
   * it, and verifying inbound requests, for `graceHours` (24 by default; 0 stops it at once).
   */
  .post("/api/webhooks/:id/secret", async (c) => {
    const e = await ownedEndpoint(c);
    const empty = c.req.header("content-length") === "0" || !c.req.header("content-type");
    const { graceHours } = empty ? rotateRequestSchema.parse({}) : await jsonBody(c, rotateRequestSchema);
    const graceUntil = graceHours > 0 ? Date.now() + graceHours * 3_600_000 : null;
    const version = await rotateEndpointSecret(db(c.env.DB), e.accountId, e.id, graceUntil);
    if (version === null) throw notFound("webhook endpoint");
    return c.json({ id: e.id, secretVersion: version, secret: await webhookSecret(c.env, e.id, version, "standard"), previousSecretValidUntil: graceUntil });
  })

  /** Sends events to an endpoint that a 410 disabled, again. */
  .post("/api/webhooks/:id/enable", async (c) => {
    const e = await ownedEndpoint(c);
    if (e.kind !== "outbound") throw new ApiError(409, "not_outbound", "only an outbound endpoint can be disabled and enabled");
    await enableEndpoint(db(c.env.DB), e.accountId, e.id);
    return c.json(endpointView(c.env, (await endpointById(db(c.env.DB), e.id))!));
  })

  /** Inbound: the deliveries it received (and the run each started). Outbound: the events sent to it, newest first. */
  .get("/api/webhooks/:id/deliveries", async (c) => {
    const e = await ownedEndpoint(c);
    const { limit, cursor } = pageParams(c);
    const d = db(c.env.DB);
    if (e.kind === "inbound") {
      const rows = await listReceipts(d, e.id, limit + 1, cursor);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return c.json({
        deliveries: page.map((r) => ({ id: r.deliveryId, senderId: r.senderDeliveryId, outcome: r.outcome, runId: r.runId, reason: r.reason, createdAt: r.createdAt })),
        nextCursor: rows.length > limit && last ? `${last.createdAt}.${last.deliveryId}` : null,
      });
    }
    const rows = await listDeliveries(d, e.id, limit + 1, cursor);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return c.json({ deliveries: page.map((r) => deliveryView(r)), nextCursor: rows.length > limit && last ? `${last.createdAt}.${last.id}` : null });
  })

  .get("/api/webhooks/:id/deliveries/:deliveryId", async (c) => {
    const e = await ownedEndpoint(c);
    const row = await delivery(db(c.env.DB), e.id, c.req.param("deliveryId"));
    if (!row) throw notFound("delivery");
    return c.json(deliveryView(row, true));
  })

  /** Sends a delivery again now, with the same id and body and a fresh signature; answers how it went. */
  .post("/api/webhooks/:id/deliveries/:deliveryId/redeliver", async (c) => {
    const e = await ownedEndpoint(c);
    if (e.kind !== "outbound" || !e.url) throw new ApiError(409, "not_outbound", "only an outbound endpoint's deliveries can be sent again");
    const d = db(c.env.DB);
    const row = await delivery(d, e.id, c.req.param("deliveryId"));
    if (!row) throw notFound("delivery");
    const result = await sendDelivery(c.env, { ...e, url: e.url }, row);
    await recordRedelivery(d, row.id, { ok: result.ok, status: result.status, error: result.error, at: Date.now() });
    const after = (await delivery(d, e.id, row.id))!;
    return c.json({ delivered: result.ok, status: result.status, error: result.error, delivery: deliveryView(after) });
  })

  // ---------------------------------------------------------------- inbound: a signed payload starts a run

  .post("/hooks/:endpointId", async (c) => {
    const id = c.req.param("endpointId");
    const d = db(c.env.DB);
    const endpoint = ENDPOINT_ID.test(id) ? await liveEndpoint(d, id) : undefined;
    if (!endpoint || endpoint.kind !== "inbound") throw notFound("webhook endpoint");
    if (Number(c.req.header("content-length") ?? "0") > MAX_BODY_BYTES) throw new ApiError(413, "body_too_large", `request body is over ${MAX_BODY_BYTES} bytes`);
    const body = await c.req.text();
    if (body.length > MAX_BODY_BYTES) throw new ApiError(413, "body_too_large", `request body is over ${MAX_BODY_BYTES} bytes`);
    const headers = c.req.raw.headers;
    const keys = await endpointKeys(c.env, endpoint);
    const verdict = await verifyHookRequest([keys.current, ...(keys.previous ? [keys.previous] : [])], headers, body);
    if (!verdict.ok) throw new ApiError(401, "invalid_signature", verdict.reason);

    // What makes a redelivery land on the first run is signed: a delivery id inside the signature, else
    // the signature and body themselves (src/integrations/signatures.ts). An unsigned id is only shown.
    const deliveryId = verdict.identity;
    const senderDeliveryId = verdict.senderDelivery !== null && DELIVERY_ID.test(verdict.senderDelivery) ? verdict.senderDelivery : null;
    if (!DELIVERY_ID.test(deliveryId)) throw new ApiError(400, "invalid_delivery_id", "the delivery id must be 1 to 200 visible ASCII characters");

    const seen = await receipt(d, endpoint.id, deliveryId);
    if (seen) return c.json(await receiptAnswer(c.env, seen.outcome, seen.runId, seen.reason, deliveryId, true), 200);

    const payload = parsePayload(body, c.req.header("content-type") ?? "");
    const rendered = renderTemplate(resolveTemplate(endpoint.template as TemplateInput), payload);
    if (!rendered.matched) {
      await claimReceipt(d, { endpointId: endpoint.id, deliveryId, senderDeliveryId, outcome: "ignored", runId: null, reason: rendered.reason });
      return c.json({ ignored: true, reason: rendered.reason, delivery: deliveryId }, 200);
    }
    const checked = runRequestSchema.safeParse(rendered.request);
    if (!checked.success) {
      const issues = checked.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
      throw new ApiError(422, "template_invalid_run", `the template made a run request that is not valid: ${issues[0]?.path || "request"}: ${issues[0]?.message}`, issues);
    }
    // Started first, recorded after: starting a derived id again is harmless, so a crash in between
    // only means the redelivery starts (that is, finds) the same run.
    const runId = await derivedRunId(c.env, `hook:${endpoint.id}:${deliveryId}`);
    const view = await startRun(c.env, { id: runId, accountId: endpoint.accountId, request: checked.data });
    const first = await claimReceipt(d, { endpointId: endpoint.id, deliveryId, senderDeliveryId, outcome: "started", runId, reason: null });
    return c.json({ id: runId, status: view.status, links: view.links, delivery: deliveryId, ...(first ? {} : { replayed: true }) }, first ? 202 : 200);
  });

async function receiptAnswer(env: Env, outcome: "started" | "ignored", runId: string | null, reason: string | null, deliveryId: string, replayed: boolean) {
  if (outcome === "ignored" || !runId) return { ignored: true, reason, delivery: deliveryId, replayed };
  const view = await env.RUN_COORDINATOR.get(env.RUN_COORDINATOR.idFromName(runId)).view();
  return { id: runId, status: view.status, links: view.links, delivery: deliveryId, replayed };
}

/** JSON, or GitHub's form encoding (`payload=<json>`). */
function parsePayload(body: string, contentType: string): unknown {
  try {
    if (/^application\/x-www-form-urlencoded\b/i.test(contentType)) return JSON.parse(new URLSearchParams(body).get("payload") ?? "");
    return JSON.parse(body);
  } catch (err) {
    throw new ApiError(400, "invalid_json", `the payload is not valid JSON: ${(err as Error).message}`);
  }
}
