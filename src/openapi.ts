// The API's own description: an OpenAPI 3.1 document built from the code. Every request body that has a
// zod schema is turned into JSON Schema by zod itself (never written by hand); the operation list is
// checked against the app's own route table by test/worker/openapi.test.ts, so it cannot drift.
import { z } from "zod";
import { accountLimitsSchema, keyRequestSchema } from "./routes/keys.ts";
import { shareRequestSchema } from "./routes/share.ts";
import { webhookCreateSchema } from "./routes/webhooks.ts";
import { previewRequestSchema, roundRequestSchema, runRequestSchema, winnerRequestSchema } from "./run-request.ts";
import { VERSION } from "./version.ts";

type Auth = "key" | "admin-token" | "share-token" | "signed" | "slack" | "none";

export interface Operation {
  method: "get" | "post" | "put" | "patch" | "delete";
  /** Hono's form: `/api/runs/:id`. */
  path: string;
  tag: string;
  summary: string;
  auth: Auth;
  scope?: "runs:read" | "runs:write" | "admin";
  body?: z.ZodType;
  /** A body that is not JSON with a zod schema (Slack's form posts, raw bytes). */
  rawBody?: string;
  responses: Record<string, string>;
}

const runs = "Runs";
const rounds = "Rounds and winners";
const share = "Share links and the run page";
const previews = "Previews";
const accounts = "Accounts and keys";
const integrations = "Slack and webhooks";
const internal = "Internal (sandboxes)";

export const OPERATIONS: Operation[] = [
  { method: "get", path: "/health", tag: "Service", summary: "Liveness and version", auth: "none", responses: { 200: "{ok, version}" } },
  { method: "get", path: "/api/openapi.json", tag: "Service", summary: "This document", auth: "none", responses: { 200: "OpenAPI 3.1 document" } },
  { method: "get", path: "/docs", tag: "Service", summary: "This document as a page", auth: "none", responses: { 200: "HTML" } },

  { method: "post", path: "/api/runs", tag: runs, summary: "Start a run (N attempts of one prompt)", auth: "key", scope: "runs:write", body: runRequestSchema, responses: { 202: "{id, status, links}", 429: "an account limit (Retry-After)" } },
  { method: "get", path: "/api/runs", tag: runs, summary: "Your runs, newest first (?limit, ?status, ?cursor)", auth: "key", scope: "runs:read", responses: { 200: "{runs, nextCursor}" } },
  { method: "get", path: "/api/runs/:id", tag: runs, summary: "The run: rounds, attempts, summaries, diff stats, usage, previews, lastEventSeq", auth: "key", scope: "runs:read", responses: { 200: "RunView" } },
  { method: "get", path: "/api/runs/:id/events", tag: runs, summary: "The event log (?after); Server-Sent Events with Accept: text/event-stream, resumable with Last-Event-ID", auth: "key", scope: "runs:read", responses: { 200: "{events, next} or text/event-stream" } },
  { method: "get", path: "/api/runs/:id/live", tag: runs, summary: "WebSocket: snapshot, then each event and fresh views (?after)", auth: "key", scope: "runs:read", responses: { 101: "WebSocket", 426: "not a WebSocket request" } },
  { method: "post", path: "/api/runs/:id/cancel", tag: runs, summary: "Cancel every attempt; every sandbox is deleted", auth: "key", scope: "runs:write", responses: { 200: "RunView" } },
  { method: "post", path: "/api/runs/:id/attempts/:n/cancel", tag: runs, summary: "Cancel one attempt of the newest round", auth: "key", scope: "runs:write", responses: { 200: "RunView" } },
  { method: "get", path: "/api/runs/:id/attempts/:n/:artifact", tag: runs, summary: "The newest round's attempt's patch (diff) or agent log (log)", auth: "key", scope: "runs:read", responses: { 200: "text" } },
  { method: "get", path: "/api/runs/:id/rounds/:round/attempts/:n/:artifact", tag: runs, summary: "An attempt's patch (diff) or agent log (log)", auth: "key", scope: "runs:read", responses: { 200: "text" } },

  { method: "post", path: "/api/runs/:id/rounds/:round/winner", tag: rounds, summary: "Pick the round's winner; its workspace is packed into R2", auth: "key", scope: "runs:write", body: winnerRequestSchema, responses: { 202: "RunView", 409: "picked already, or the attempt is not done" } },
  { method: "post", path: "/api/runs/:id/rounds", tag: rounds, summary: "The next round, seeded from a stored winner", auth: "key", scope: "runs:write", body: roundRequestSchema, responses: { 202: "RunView", 409: "no stored winner, a round still running, or the round limit", 429: "an account limit" } },
  { method: "get", path: "/api/runs/:id/rounds/:round/winner.tar.gz", tag: rounds, summary: "The winner's workspace tarball (Range, ETag)", auth: "key", scope: "runs:read", responses: { 200: "application/gzip", 206: "a range", 304: "not modified" } },

  { method: "post", path: "/api/runs/:id/attempts/:n/preview", tag: previews, summary: "Serve the newest round's attempt and answer its signed preview URL", auth: "key", scope: "runs:write", body: previewRequestSchema, responses: { 200: "{attempt, url, expiresAt, kind, port}", 409: "{attempt, error}" } },
  { method: "post", path: "/api/runs/:id/rounds/:round/attempts/:n/preview", tag: previews, summary: "Serve one attempt and answer its signed preview URL", auth: "key", scope: "runs:write", body: previewRequestSchema, responses: { 200: "{attempt, url, expiresAt, kind, port}", 409: "{attempt, error}" } },
  { method: "post", path: "/api/runs/:id/rounds/:round/preview", tag: previews, summary: "Every attempt of the round at once", auth: "key", scope: "runs:write", body: previewRequestSchema, responses: { 200: "{previews: [...]}" } },

  { method: "post", path: "/api/runs/:id/share", tag: share, summary: "A share link /r/<token> (view or control); the token is shown once", auth: "key", scope: "runs:write", body: shareRequestSchema, responses: { 201: "{id, scope, url, expiresAt, createdAt}" } },
  { method: "get", path: "/api/runs/:id/share", tag: share, summary: "The run's share links (no tokens)", auth: "key", scope: "runs:read", responses: { 200: "{links}" } },
  { method: "delete", path: "/api/runs/:id/share/:linkId", tag: share, summary: "Revoke a link; its open pages stop", auth: "key", scope: "runs:write", responses: { 200: "the link, revoked" } },
  { method: "get", path: "/r/:token", tag: share, summary: "The live run page", auth: "share-token", responses: { 200: "HTML", 404: "link expired" } },
  { method: "get", path: "/r/:token/live.html", tag: share, summary: "The page's live region, rendered", auth: "share-token", responses: { 200: "HTML fragment" } },
  { method: "get", path: "/r/:token/live", tag: share, summary: "The page's WebSocket", auth: "share-token", responses: { 101: "WebSocket" } },
  { method: "get", path: "/r/:token/run.json", tag: share, summary: "The run as JSON", auth: "share-token", responses: { 200: "RunView" } },
  { method: "get", path: "/r/:token/events", tag: share, summary: "The run's events as Server-Sent Events", auth: "share-token", responses: { 200: "text/event-stream" } },
  { method: "get", path: "/r/:token/rounds/:round/attempts/:n/:artifact", tag: share, summary: "An attempt's patch or raw log, as text", auth: "share-token", responses: { 200: "text" } },
  { method: "get", path: "/r/:token/rounds/:round/attempts/:n/transcript", tag: share, summary: "An attempt's whole transcript, as text", auth: "share-token", responses: { 200: "text" } },
  { method: "get", path: "/r/:token/rounds/:round/winner.tar.gz", tag: share, summary: "The winner's tarball", auth: "share-token", responses: { 200: "application/gzip" } },
  { method: "post", path: "/r/:token/rounds/:round/winner", tag: share, summary: "Pick a winner (control links)", auth: "share-token", body: winnerRequestSchema, responses: { 202: "RunView", 403: "a view link" } },
  { method: "post", path: "/r/:token/rounds", tag: share, summary: "The next round (control links)", auth: "share-token", body: roundRequestSchema, responses: { 202: "RunView", 403: "a view link" } },
  { method: "post", path: "/r/:token/rounds/:round/attempts/:n/preview", tag: share, summary: "Preview an attempt (control links)", auth: "share-token", body: previewRequestSchema, responses: { 200: "preview", 403: "a view link" } },
  { method: "post", path: "/r/:token/rounds/:round/preview", tag: share, summary: "Preview a whole round (control links)", auth: "share-token", body: previewRequestSchema, responses: { 200: "{previews}", 403: "a view link" } },
  { method: "post", path: "/r/:token/cancel", tag: share, summary: "Cancel the run (control links)", auth: "share-token", responses: { 200: "RunView", 403: "a view link" } },

  { method: "post", path: "/api/keys", tag: accounts, summary: "A new API key (shown once)", auth: "key", scope: "admin", body: keyRequestSchema, responses: { 201: "{id, key, prefix, name, scopes}" } },
  { method: "get", path: "/api/keys", tag: accounts, summary: "The account's keys (no secrets)", auth: "key", scope: "admin", responses: { 200: "{keys}" } },
  { method: "delete", path: "/api/keys/:keyId", tag: accounts, summary: "Revoke a key", auth: "key", scope: "admin", responses: { 200: "{id, revokedAt}" } },
  { method: "post", path: "/api/accounts", tag: accounts, summary: "A new account and its first admin key", auth: "admin-token", body: z.strictObject({ name: z.string().trim().min(1).max(100), limits: accountLimitsSchema.optional() }), responses: { 201: "{account, key}" } },
  { method: "get", path: "/api/accounts/me", tag: accounts, summary: "The caller's account: limits and what is in use", auth: "key", responses: { 200: "{id, name, limits, usage}" } },
  { method: "patch", path: "/api/accounts/:accountId", tag: accounts, summary: "Set an account's limits", auth: "admin-token", body: z.strictObject({ limits: accountLimitsSchema }), responses: { 200: "{id, limits}" } },
  { method: "get", path: "/api/admin/stats", tag: accounts, summary: "Runs and attempts by status, the sandbox sweeper's counters", auth: "admin-token", responses: { 200: "{runs, attempts, sweeper}" } },

  { method: "post", path: "/slack/commands", tag: integrations, summary: "Slack's slash command (/multishot)", auth: "slack", rawBody: "application/x-www-form-urlencoded (Slack)", responses: { 200: "a Slack message", 401: "bad signature" } },
  { method: "post", path: "/slack/interactions", tag: integrations, summary: "Slack's buttons and modal", auth: "slack", rawBody: "application/x-www-form-urlencoded (Slack)", responses: { 200: "ok", 401: "bad signature" } },
  { method: "post", path: "/api/slack/link-codes", tag: integrations, summary: "A one-time code that links a Slack workspace or user to the account", auth: "key", scope: "admin", responses: { 201: "{code, expiresAt}" } },
  { method: "get", path: "/api/slack/links", tag: integrations, summary: "The account's Slack links", auth: "key", scope: "admin", responses: { 200: "{links}" } },
  { method: "delete", path: "/api/slack/links/:linkId", tag: integrations, summary: "Remove a Slack link", auth: "key", scope: "admin", responses: { 200: "the link" } },
  { method: "post", path: "/api/webhooks", tag: integrations, summary: "An inbound or outbound webhook endpoint (its secret shown once)", auth: "key", scope: "admin", body: webhookCreateSchema, responses: { 201: "{id, …, secret}" } },
  { method: "get", path: "/api/webhooks", tag: integrations, summary: "The account's endpoints", auth: "key", scope: "admin", responses: { 200: "{webhooks}" } },
  { method: "get", path: "/api/webhooks/:id", tag: integrations, summary: "One endpoint", auth: "key", scope: "admin", responses: { 200: "the endpoint" } },
  { method: "delete", path: "/api/webhooks/:id", tag: integrations, summary: "Delete an endpoint", auth: "key", scope: "admin", responses: { 200: "deleted" } },
  { method: "post", path: "/api/webhooks/:id/secret", tag: integrations, summary: "Rotate the endpoint's secret", auth: "key", scope: "admin", responses: { 200: "{secret}" } },
  { method: "get", path: "/api/webhooks/:id/deliveries", tag: integrations, summary: "The delivery log", auth: "key", scope: "admin", responses: { 200: "{deliveries, next}" } },
  { method: "get", path: "/api/webhooks/:id/deliveries/:deliveryId", tag: integrations, summary: "One delivery", auth: "key", scope: "admin", responses: { 200: "the delivery" } },
  { method: "post", path: "/api/webhooks/:id/deliveries/:deliveryId/redeliver", tag: integrations, summary: "Deliver again", auth: "key", scope: "admin", responses: { 200: "the delivery" } },
  { method: "post", path: "/hooks/:endpointId", tag: integrations, summary: "A signed inbound payload (X-Multishot-Signature or GitHub's X-Hub-Signature-256) starts a run", auth: "signed", rawBody: "application/json (signed as sent)", responses: { 202: "{id, status, links}", 200: "a redelivery: the first run", 401: "bad signature" } },

  { method: "post", path: "/ingest/:run/:round/:attempt/:sig", tag: internal, summary: "A runner's reports from its sandbox", auth: "signed", rawBody: "application/json", responses: { 200: "ok", 410: "the attempt has ended" } },
  { method: "post", path: "/llm/:run/:round/:attempt/:sig/*", tag: internal, summary: "The credential gateway: POST /v1/messages and /v1/messages/count_tokens only", auth: "signed", rawBody: "a Messages API request", responses: { 200: "the Messages API's answer, unchanged", 403: "attempt over or budget spent" } },
  { method: "put", path: "/upload/:run/:round/:try/:expires/:sig/parts/:n", tag: internal, summary: "A part of a winner's tarball", auth: "signed", rawBody: "application/octet-stream", responses: { 200: "{part, etag, size}" } },
  { method: "post", path: "/upload/:run/:round/:try/:expires/:sig/complete", tag: internal, summary: "Complete a winner's upload", auth: "signed", rawBody: "application/json", responses: { 200: "{size}" } },
  { method: "get", path: "/download/:run/:round/:expires/:sig", tag: internal, summary: "A winner's tarball for a next round's seed", auth: "signed", responses: { 200: "application/gzip" } },
];

/** `/api/runs/:id/rounds/:round` → `/api/runs/{id}/rounds/{round}`; a trailing `*` stays a literal. */
export const openApiPath = (p: string) => p.replace(/:([A-Za-z]+)(\{[^}]*\})?/g, "{$1}");

const ERROR = { $ref: "#/components/schemas/Error" };

export function openApiDocument(publicUrl: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const path = openApiPath(op.path);
    const params = [...path.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(op.responses)) responses[status] = { description };
    responses["4XX"] = { description: "a refusal: {error: {code, message, details?}}", content: { "application/json": { schema: ERROR } } };
    paths[path] ??= {};
    paths[path][op.method] = {
      tags: [op.tag],
      summary: op.summary,
      operationId: `${op.method}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
      ...(params.length ? { parameters: params } : {}),
      ...(op.body
        ? { requestBody: { required: true, content: { "application/json": { schema: z.toJSONSchema(op.body, { io: "input", target: "draft-2020-12", unrepresentable: "any" }) } } } }
        : op.rawBody
          ? { requestBody: { description: op.rawBody, content: { "*/*": { schema: {} } } } }
          : {}),
      responses,
      security: op.auth === "key" || op.auth === "admin-token" ? [{ bearer: [] }] : [],
      ...(op.scope ? { "x-scope": op.scope } : {}),
      "x-auth": op.auth,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "multishot",
      version: VERSION,
      description: "Run one coding task as N parallel agent attempts in sandboxes, pick a winner, iterate. API keys go in `Authorization: Bearer <key>`.",
    },
    servers: [{ url: publicUrl.replace(/\/$/, "") }],
    tags: [...new Set(OPERATIONS.map((o) => o.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "an API key (msk_…), or ADMIN_TOKEN for operator routes" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: { error: { type: "object", required: ["code", "message"], properties: { code: { type: "string" }, message: { type: "string" }, details: {} } } },
        },
      },
    },
  };
}
