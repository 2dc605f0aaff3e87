// The API's own description: an OpenAPI 3.1 document built from the code. Every request body that has a
// zod schema is turned into JSON Schema by zod itself (never written by hand); answers are described
// loosely (their key fields), since no schema checks them. test/worker/openapi.test.ts walks the app's own
// route table against this list, both ways, and calls every operation without and with its documented
// scope; test/node/openapi.test.ts validates the document as OpenAPI 3.1.
import { z } from "zod";
import { RUN_STATUSES } from "./vocabulary.ts";
import type { Scope } from "./keys.ts";
import { accountCreateSchema, accountUpdateSchema, keyRequestSchema } from "./routes/keys.ts";
import { shareRequestSchema } from "./routes/share.ts";
import { linkCodeRequestSchema } from "./routes/slack.ts";
import { rotateRequestSchema, webhookCreateSchema } from "./routes/webhooks.ts";
import { previewRequestSchema, roundRequestSchema, runRequestSchema, winnerRequestSchema } from "./run-request.ts";
import { VERSION } from "./version.ts";

type JsonSchema = Record<string, unknown>;

/** Who may call an operation. */
type Auth =
  | "key" //         an API key (Authorization: Bearer msk_…), with `scope` if one is needed
  | "admin-token" // the operator's ADMIN_TOKEN
  | "share-token" // the share link's token in the path (view links read; control links also act)
  | "signed" //      an HMAC in the path or headers (signed URLs, inbound webhooks)
  | "slack" //       Slack's request signature
  | "none";

/** A query or header parameter (path parameters come from the path itself). */
interface Param {
  name: string;
  in: "query" | "header";
  description: string;
  schema: JsonSchema;
}

/** An answer: its description, and what it carries when that is worth saying. */
type Answer = string | { description: string; json?: JsonSchema; media?: string };

export interface Operation {
  method: "get" | "post" | "put" | "patch" | "delete";
  /** Hono's form: `/api/runs/:id`, `:artifact{diff|log}`. */
  path: string;
  tag: string;
  summary: string;
  auth: Auth;
  scope?: Scope;
  params?: Param[];
  /** The route's own zod schema for its JSON body. */
  body?: z.ZodType;
  /** An empty body means the defaults. */
  bodyOptional?: boolean;
  /** A body that is not JSON with a zod schema (Slack's form posts, raw bytes). */
  rawBody?: string;
  /** More than the summary says. */
  note?: string;
  /** By status; a 4xx given as a string carries the shared Error shape. "4XX" replaces the default. */
  responses: Record<string, Answer>;
}

// ---------------------------------------------------------------- answers, loosely

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
/** An object with these key fields (it may carry more). */
const fields = (...names: string[]): JsonSchema => ({ type: "object", properties: Object.fromEntries(names.map((n) => [n, {}])) });
const json = (description: string, schema: JsonSchema): Answer => ({ description, json: schema });
const media = (description: string, type: string): Answer => ({ description, media: type });
const runView = (description = "the run (RunView)") => json(description, ref("RunView"));


// ---------------------------------------------------------------- query and header parameters

const q = (name: string, description: string, schema: JsonSchema): Param => ({ name, in: "query", description, schema });
const h = (name: string, description: string, schema: JsonSchema = { type: "string" }): Param => ({ name, in: "header", description, schema });

const idempotencyKey = h(
  "Idempotency-Key",
  "The same key within 24 hours answers the first answer again (marked `idempotent-replayed: true`) and creates nothing; the same key with a different request is a 422.",
  { type: "string", minLength: 1, maxLength: 255 },
);
const after = q("after", "Only what follows this event sequence number (0: from the start).", { type: "integer", minimum: 0, default: 0 });
const lastEventId = h("Last-Event-ID", "SSE reconnection: takes the place of `after`.");
const limit = q("limit", "How many, at most.", { type: "integer", minimum: 1, maximum: 100, default: 20 });
const cursor = q("cursor", "Where the previous page ended: its `nextCursor`.", { type: "string" });
const tarballHeaders = [h("Range", "One byte range (`bytes=start-end`, `bytes=-suffix`)."), h("If-None-Match", "An ETag from an earlier answer: 304 if unchanged.")];

// ---------------------------------------------------------------- the operations

const runs = "Runs";
const rounds = "Rounds and winners";
const previews = "Previews";
const share = "Share links and the run page";
const accounts = "Accounts and keys";
const integrations = "Slack and webhooks";
const service = "Service";
const internal = "Internal (sandboxes)";

const TAGS: Record<string, string> = {
  [runs]: "Start runs, read them, watch their events, cancel them.",
  [rounds]: "Pick a round's winner (its workspace is stored as a tarball) and start the next round from it.",
  [previews]: "Serve a done attempt's app from its sandbox behind a signed, expiring URL.",
  [share]: "Share links and what their holders can do: the page, its live updates, and (control links) act on the run.",
  [accounts]: "API keys, accounts and their limits, and the operator's view.",
  [integrations]: "Slack's slash command and buttons, inbound and outbound webhooks.",
  [service]: "Health and this documentation.",
  [internal]: "Called by the programs inside sandboxes through signed URLs, never by API clients. Listed so this document covers every route.",
};

export const OPERATIONS: Operation[] = [
  // Runs
  { method: "post", path: "/api/runs", tag: runs, summary: "Start a run: N attempts of one prompt", auth: "key", scope: "runs:write", params: [idempotencyKey], body: runRequestSchema,
    responses: { 202: json("started", ref("RunStarted")), 413: "the body is over 1 MB", 422: "`agent_unavailable`: the agent needs a credential this service lacks (claude-code: `ANTHROPIC_API_KEY` or `CLAUDE_CODE_OAUTH_TOKEN`)", 429: "an account limit (Retry-After): nothing started" } },
  { method: "get", path: "/api/runs", tag: runs, summary: "Your runs, newest first", auth: "key", scope: "runs:read",
    params: [limit, q("status", "Only runs with this status.", { type: "string", enum: RUN_STATUSES }), cursor],
    responses: { 200: json("a page of runs", { type: "object", properties: { runs: { type: "array", items: fields("id", "status", "prompt", "agent", "createdAt") }, nextCursor: { type: ["string", "null"] } } }) } },
  { method: "get", path: "/api/runs/:id", tag: runs, summary: "The run: rounds, attempts, summaries, diff stats, usage, previews, lastEventSeq", auth: "key", scope: "runs:read", responses: { 200: runView() } },
  { method: "get", path: "/api/runs/:id/events", tag: runs, summary: "The event log; live Server-Sent Events with Accept: text/event-stream", auth: "key", scope: "runs:read",
    params: [after, lastEventId],
    note: "With `Accept: text/event-stream` it is a live stream: each event's `id:` is its sequence number, reconnect with `Last-Event-ID` and nothing is lost or repeated; a quiet stream gets a `: keep-alive` comment every 15 s.",
    responses: { 200: { description: "up to 500 events after `after` and the seq to ask from next; or the SSE stream", json: { type: "object", properties: { events: { type: "array", items: ref("RunEvent") }, next: { type: "integer" } } }, media: "text/event-stream" } } },
  { method: "get", path: "/api/runs/:id/live", tag: runs, summary: "WebSocket: a snapshot, then each event and fresh views of the run", auth: "key", scope: "runs:read", params: [after],
    responses: { 101: "WebSocket: {type: \"snapshot\", seq, run}, then {type: \"event\", event} and {type: \"run\", seq, run}; send `ping` for `pong`", 426: "not a WebSocket request" } },
  { method: "post", path: "/api/runs/:id/cancel", tag: runs, summary: "Cancel every attempt; every sandbox of the run is deleted", auth: "key", scope: "runs:write", responses: { 200: runView() } },
  { method: "post", path: "/api/runs/:id/attempts/:n/cancel", tag: runs, summary: "Cancel one attempt of the newest round", auth: "key", scope: "runs:write", responses: { 200: runView() } },
  { method: "get", path: "/api/runs/:id/attempts/:n/:artifact{diff|log}", tag: runs, summary: "The newest round's attempt's patch (diff) or the agent's stream-json log (log)", auth: "key", scope: "runs:read",
    responses: { 200: media("the patch, or the log", "text/plain") } },
  { method: "get", path: "/api/runs/:id/rounds/:round/attempts/:n/:artifact{diff|log}", tag: runs, summary: "An attempt's patch against its round's base (diff) or the agent's stream-json log (log)", auth: "key", scope: "runs:read",
    responses: { 200: media("the patch, or the log", "text/plain") } },

  // Rounds and winners
  { method: "post", path: "/api/runs/:id/rounds/:round/winner", tag: rounds, summary: "Pick the round's winner; its workspace is packed and stored", auth: "key", scope: "runs:write", params: [idempotencyKey], body: winnerRequestSchema,
    responses: { 202: runView("the run; the round's `winner.status` goes packing → stored (or failed)"), 409: "a winner is picked already, or the attempt is not done" } },
  { method: "post", path: "/api/runs/:id/rounds", tag: rounds, summary: "The next round: fresh attempts seeded from a stored winner", auth: "key", scope: "runs:write", params: [idempotencyKey], body: roundRequestSchema,
    responses: { 202: runView(), 409: "no stored winner, a round still running, or the round limit", 429: "an account limit (Retry-After)" } },
  { method: "get", path: "/api/runs/:id/rounds/:round/winner.tar.gz", tag: rounds, summary: "The winner's workspace tarball, streamed (Content-Length, ETag, Range)", auth: "key", scope: "runs:read", params: tarballHeaders,
    responses: { 200: media("the tarball", "application/gzip"), 206: media("the range asked for", "application/gzip"), 304: "not modified", 416: "the range is outside the file" } },

  // Previews
  { method: "post", path: "/api/runs/:id/attempts/:n/preview", tag: previews, summary: "Serve the newest round's attempt and answer its signed preview URL", auth: "key", scope: "runs:write", body: previewRequestSchema, bodyOptional: true,
    responses: { 200: json("the preview", ref("Preview")), 409: json("it cannot be previewed, and why", ref("PreviewFailed")) } },
  { method: "post", path: "/api/runs/:id/rounds/:round/attempts/:n/preview", tag: previews, summary: "Serve one attempt's app and answer its signed preview URL", auth: "key", scope: "runs:write", body: previewRequestSchema, bodyOptional: true,
    responses: { 200: json("the preview", ref("Preview")), 409: json("it cannot be previewed, and why", ref("PreviewFailed")) } },
  { method: "post", path: "/api/runs/:id/rounds/:round/preview", tag: previews, summary: "Every attempt of the round at once", auth: "key", scope: "runs:write", body: previewRequestSchema, bodyOptional: true,
    responses: { 200: json("one answer per attempt", { type: "object", properties: { previews: { type: "array", items: { anyOf: [ref("Preview"), ref("PreviewFailed")] } } } }) } },

  // Share links and the run page
  { method: "post", path: "/api/runs/:id/share", tag: share, summary: "A share link /r/<token> (view or control); the token is in the url, shown this once", auth: "key", scope: "runs:write", body: shareRequestSchema, bodyOptional: true,
    responses: { 201: json("the link", fields("id", "runId", "scope", "url", "createdAt", "expiresAt")) } },
  { method: "get", path: "/api/runs/:id/share", tag: share, summary: "The run's share links (no tokens)", auth: "key", scope: "runs:read",
    responses: { 200: json("the links", { type: "object", properties: { links: { type: "array", items: fields("id", "scope", "createdAt", "expiresAt", "revokedAt") } } }) } },
  { method: "delete", path: "/api/runs/:id/share/:linkId", tag: share, summary: "Revoke a link; its open pages stop", auth: "key", scope: "runs:write",
    responses: { 200: json("the link, revoked", fields("id", "scope", "revokedAt")) } },
  { method: "get", path: "/r/:token", tag: share, summary: "The live run page", auth: "share-token", responses: { 200: media("the page", "text/html"), 404: "the link is unknown, expired or revoked" } },
  { method: "get", path: "/r/:token/live.html", tag: share, summary: "The page's live region, rendered", auth: "share-token", responses: { 200: media("an HTML fragment", "text/html") } },
  { method: "get", path: "/r/:token/live", tag: share, summary: "The page's WebSocket (as /api/runs/{id}/live)", auth: "share-token", params: [after], responses: { 101: "WebSocket" } },
  { method: "get", path: "/r/:token/run.json", tag: share, summary: "The run as JSON", auth: "share-token", responses: { 200: runView() } },
  { method: "get", path: "/r/:token/events", tag: share, summary: "The run's events as Server-Sent Events", auth: "share-token", params: [after, lastEventId], responses: { 200: media("the SSE stream", "text/event-stream") } },
  { method: "get", path: "/r/:token/rounds/:round/attempts/:n/:artifact{diff|log}", tag: share, summary: "An attempt's patch (diff) or raw log (log)", auth: "share-token", responses: { 200: media("the patch, or the log", "text/plain") } },
  { method: "get", path: "/r/:token/rounds/:round/attempts/:n/transcript", tag: share, summary: "An attempt's whole transcript", auth: "share-token", responses: { 200: media("the transcript", "text/plain") } },
  { method: "get", path: "/r/:token/rounds/:round/winner.tar.gz", tag: share, summary: "The winner's tarball", auth: "share-token", params: tarballHeaders, responses: { 200: media("the tarball", "application/gzip"), 206: media("the range asked for", "application/gzip"), 304: "not modified" } },
  { method: "post", path: "/r/:token/rounds/:round/winner", tag: share, summary: "Pick a winner (control links)", auth: "share-token", body: winnerRequestSchema, responses: { 202: runView(), 403: "a view link" } },
  { method: "post", path: "/r/:token/rounds", tag: share, summary: "The next round (control links)", auth: "share-token", body: roundRequestSchema, responses: { 202: runView(), 403: "a view link" } },
  { method: "post", path: "/r/:token/rounds/:round/attempts/:n/preview", tag: share, summary: "Preview an attempt (control links)", auth: "share-token", body: previewRequestSchema, bodyOptional: true,
    responses: { 200: json("the preview", ref("Preview")), 409: json("it cannot be previewed, and why", ref("PreviewFailed")), 403: "a view link" } },
  { method: "post", path: "/r/:token/rounds/:round/preview", tag: share, summary: "Preview a whole round (control links)", auth: "share-token", body: previewRequestSchema, bodyOptional: true,
    responses: { 200: json("one answer per attempt", fields("previews")), 403: "a view link" } },
  { method: "post", path: "/r/:token/cancel", tag: share, summary: "Cancel the run (control links)", auth: "share-token", responses: { 200: runView(), 403: "a view link" } },

  // Accounts and keys
  { method: "post", path: "/api/keys", tag: accounts, summary: "A new API key, shown this once (D1 keeps its SHA-256)", auth: "key", scope: "admin", params: [idempotencyKey], body: keyRequestSchema,
    responses: { 201: json("the key", fields("id", "key", "prefix", "name", "scopes")) } },
  { method: "get", path: "/api/keys", tag: accounts, summary: "The account's keys (prefix, scopes, last used, revoked; no secrets)", auth: "key", scope: "admin",
    responses: { 200: json("the keys", { type: "object", properties: { keys: { type: "array", items: fields("id", "name", "prefix", "scopes", "createdAt", "lastUsedAt", "revokedAt") } } }) } },
  { method: "delete", path: "/api/keys/:keyId", tag: accounts, summary: "Revoke a key", auth: "key", scope: "admin", responses: { 200: json("revoked", fields("id", "revokedAt")) } },
  { method: "post", path: "/api/accounts", tag: accounts, summary: "A new account and its first admin key", auth: "admin-token", body: accountCreateSchema,
    responses: { 201: json("the account and its key (shown this once)", fields("account", "key")) } },
  { method: "get", path: "/api/accounts/me", tag: accounts, summary: "The caller's account: its limits and what is in use", auth: "key",
    responses: { 200: json("the account", fields("id", "name", "limits", "usage")) } },
  { method: "patch", path: "/api/accounts/:accountId", tag: accounts, summary: "Set an account's limits", auth: "admin-token", body: accountUpdateSchema, responses: { 200: json("the account's limits now", fields("id", "limits")) } },
  { method: "get", path: "/api/admin/stats", tag: accounts, summary: "Runs and attempts by status, the sandbox sweeper's counters", auth: "admin-token", responses: { 200: json("the stats", fields("runs", "attempts", "sweeper")) } },
  { method: "get", path: "/api/admin/runs/:id/stats", tag: accounts, summary: "How often the run's Durable Object was woken: alarms, and requests (fetches and runner reports)", auth: "admin-token",
    responses: { 200: json("the run's wake-ups since it started", fields("id", "alarms", "requests")), 404: "no such run" } },

  // Slack and webhooks
  { method: "post", path: "/slack/commands", tag: integrations, summary: "Slack's slash command (/multishot)", auth: "slack", rawBody: "application/x-www-form-urlencoded, as Slack sends it", responses: { 200: "a Slack message", 401: "a bad signature" } },
  { method: "post", path: "/slack/interactions", tag: integrations, summary: "Slack's buttons and modal", auth: "slack", rawBody: "application/x-www-form-urlencoded, as Slack sends it", responses: { 200: "acknowledged", 401: "a bad signature" } },
  { method: "post", path: "/api/slack/link-codes", tag: integrations, summary: "A one-time code that `/multishot link <code>` redeems to link a Slack workspace (or user) to the account", auth: "key", scope: "admin", body: linkCodeRequestSchema, bodyOptional: true,
    responses: { 201: json("the code, shown this once", fields("code", "scope", "expiresAt", "command")) } },
  { method: "get", path: "/api/slack/links", tag: integrations, summary: "The account's Slack links", auth: "key", scope: "admin", responses: { 200: json("the links", fields("links")) } },
  { method: "delete", path: "/api/slack/links/:linkId", tag: integrations, summary: "Remove a Slack link", auth: "key", scope: "admin", responses: { 200: json("removed", fields("id", "deleted")) } },
  { method: "post", path: "/api/webhooks", tag: integrations, summary: "An inbound or outbound webhook endpoint; its secret is shown in this answer", auth: "key", scope: "admin", params: [idempotencyKey], body: webhookCreateSchema,
    responses: { 201: json("the endpoint and its secret", fields("id", "kind", "name", "secretVersion", "hookUrl", "url", "events", "secret")) } },
  { method: "get", path: "/api/webhooks", tag: integrations, summary: "The account's endpoints (no secrets)", auth: "key", scope: "admin", responses: { 200: json("the endpoints", fields("endpoints")) } },
  { method: "get", path: "/api/webhooks/:id", tag: integrations, summary: "One endpoint", auth: "key", scope: "admin", responses: { 200: json("the endpoint", fields("id", "kind", "name", "secretVersion", "createdAt")) } },
  { method: "delete", path: "/api/webhooks/:id", tag: integrations, summary: "Delete an endpoint", auth: "key", scope: "admin", responses: { 200: json("deleted", fields("id", "deleted")) } },
  { method: "post", path: "/api/webhooks/:id/secret", tag: integrations, summary: "Rotate the endpoint's secret; the old one keeps working for graceHours (24)", auth: "key", scope: "admin", body: rotateRequestSchema,
    responses: { 200: json("the new secret", fields("id", "secretVersion", "secret", "previousSecretValidUntil")) } },
  { method: "post", path: "/api/webhooks/:id/enable", tag: integrations, summary: "Send events again to an endpoint a receiver's 410 disabled", auth: "key", scope: "admin", responses: { 200: json("the endpoint", fields("id", "disabledAt")) } },
  { method: "get", path: "/api/webhooks/:id/deliveries", tag: integrations, summary: "The delivery log, newest first", auth: "key", scope: "admin", params: [limit, cursor],
    responses: { 200: json("a page of deliveries", fields("deliveries", "nextCursor")) } },
  { method: "get", path: "/api/webhooks/:id/deliveries/:deliveryId", tag: integrations, summary: "One delivery, with its payload", auth: "key", scope: "admin",
    responses: { 200: json("the delivery", fields("id", "runId", "event", "status", "tries", "lastStatus", "lastError", "payload")) } },
  { method: "post", path: "/api/webhooks/:id/deliveries/:deliveryId/redeliver", tag: integrations, summary: "Deliver again, now", auth: "key", scope: "admin",
    responses: { 200: json("what happened", fields("delivered", "status", "error", "delivery")) } },
  { method: "post", path: "/hooks/:endpointId", tag: integrations, summary: "A signed inbound payload (X-Multishot-Signature/-Timestamp/-Delivery, or GitHub's X-Hub-Signature-256/X-GitHub-Delivery) starts a run", auth: "signed",
    rawBody: "JSON, signed exactly as sent",
    responses: { 202: json("a run started", fields("id", "status", "links", "delivery")), 200: json("a redelivery (the first run, `replayed: true`), or a payload the template ignores", fields("id", "replayed", "ignored", "reason", "delivery")), 401: "a bad signature" } },

  // Service
  { method: "get", path: "/health", tag: service, summary: "Liveness and version", auth: "none", responses: { 200: json("up", fields("ok", "version")) } },
  { method: "get", path: "/api/openapi.json", tag: service, summary: "This document (OpenAPI 3.1)", auth: "none", responses: { 200: media("the document", "application/json") } },
  { method: "get", path: "/docs", tag: service, summary: "This document as a page", auth: "none", responses: { 200: media("the page", "text/html") } },

  // Internal
  { method: "post", path: "/ingest/:run/:round/:attempt/:sig", tag: internal, summary: "A runner's reports from its sandbox (job exits, the agent's stream-json lines)", auth: "signed", rawBody: "application/json",
    responses: { 200: json("recorded", fields("ok")), 410: "the attempt has ended" } },
  { method: "post", path: "/llm/:run/:round/:attempt/:sig/*", tag: internal, summary: "The credential gateway: POST v1/messages and v1/messages/count_tokens, forwarded with the real key", auth: "signed", rawBody: "a Messages API request",
    responses: { 200: "the Messages API's answer, streamed back unchanged", "4XX": json("refused (the attempt is over, the budget is spent, not a forwarded call), in the Messages API's own error shape", fields("type", "error")) } },
];

// ---------------------------------------------------------------- the document

/** `/api/runs/:id/attempts/:n/:artifact{diff|log}` → `/api/runs/{id}/attempts/{n}/{artifact}`; a trailing `*` stays. */
export const openApiPath = (p: string) => p.replace(/:([A-Za-z]+)(\{[^}]*\})?/g, "{$1}");

function pathParams(path: string, tag: string): JsonSchema[] {
  return [...path.matchAll(/:([A-Za-z]+)(?:\{([^}]*)\})?/g)].map(([, name, pattern]) => {
    const ordinal = name === "round" || name === "n" || name === "attempt";
    const choices = pattern && /^\w+(\|\w+)+$/.test(pattern) ? pattern.split("|") : undefined;
    const schema: JsonSchema = choices ? { type: "string", enum: choices } : ordinal ? { type: "integer", minimum: 1 } : { type: "string" };
    return { name, in: "path", required: true, description: describeParam(name!, tag), schema };
  });
}

function describeParam(name: string, tag: string): string {
  if (tag === internal) return "part of the signed URL the sandbox was given";
  const known: Record<string, string> = {
    id: tag === integrations ? "the webhook endpoint's id (wh_…)" : "the run's id (run_…)",
    round: "the round's number (1, 2, …)",
    n: "the attempt's number in its round (1, 2, …)",
    artifact: "diff: the patch; log: the agent's stream-json log",
    token: "the share link's token (mss_…): the credential",
    linkId: tag === integrations ? "the Slack link's id" : "the share link's id",
    keyId: "the key's id",
    accountId: "the account's id",
    deliveryId: "the delivery's id",
    endpointId: "the inbound endpoint's id (wh_…)",
  };
  return known[name] ?? name;
}

const AUTH_TEXT: Record<Auth, string> = {
  key: "An API key: `Authorization: Bearer <key>`.",
  "admin-token": "The operator's `ADMIN_TOKEN` as the bearer token.",
  "share-token": "The share link's token in the path is the credential: a view link reads, a control link also acts.",
  signed: "Signed: the HMAC in the URL (or the signature headers) is the credential.",
  slack: "Signed by Slack (X-Slack-Signature over the raw body).",
  none: "No credentials.",
};

const ERROR = ref("Error");

function response(status: string, answer: Answer): JsonSchema {
  if (typeof answer === "string") {
    return Number(status) >= 400 ? { description: answer, content: { "application/json": { schema: ERROR } } } : { description: answer };
  }
  const content: Record<string, unknown> = {};
  if (answer.json) content["application/json"] = { schema: answer.json };
  if (answer.media) content[answer.media] = { schema: answer.media === "application/gzip" ? { type: "string", contentMediaType: "application/gzip" } : { type: "string" } };
  return { description: answer.description, ...(answer.json || answer.media ? { content } : {}) };
}

/** The request body as JSON Schema, generated by zod from the route's own schema (what a client may send). */
export const bodySchema = (schema: z.ZodType): JsonSchema => z.toJSONSchema(schema, { io: "input", target: "draft-2020-12", unrepresentable: "any" }) as JsonSchema;

function operation(op: Operation): JsonSchema {
  const path = openApiPath(op.path);
  const responses: Record<string, unknown> = {};
  for (const [status, answer] of Object.entries(op.responses)) responses[status] = response(status, answer);
  responses["4XX"] ??= { description: "a refusal: `{error: {code, message, details?}}`", content: { "application/json": { schema: ERROR } } };
  responses["5XX"] = { description: "an internal error (names no internals)", content: { "application/json": { schema: ERROR } } };
  const parameters = [...pathParams(op.path, op.tag), ...(op.params ?? []).map((p) => ({ ...p, required: false }))];
  const scopeText = op.scope ? ` Scope \`${op.scope}\`${op.scope === "admin" ? "" : " (or `admin`)"}.` : "";
  return {
    tags: [op.tag],
    summary: op.summary,
    description: [op.note, AUTH_TEXT[op.auth] + scopeText].filter(Boolean).join("\n\n"),
    operationId: `${op.method}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
    ...(parameters.length ? { parameters } : {}),
    ...(op.body
      ? { requestBody: { required: !op.bodyOptional, ...(op.bodyOptional ? { description: "Optional: an empty body means the defaults." } : {}), content: { "application/json": { schema: bodySchema(op.body) } } } }
      : op.rawBody
        ? { requestBody: { description: op.rawBody, content: { "*/*": { schema: {} } } } }
        : {}),
    responses,
    // OpenAPI 3.1 lets a bearer scheme's requirement name the roles it needs: here, the key's scope.
    security: op.auth === "key" ? [{ apiKey: op.scope ? [op.scope] : [] }] : op.auth === "admin-token" ? [{ adminToken: [] }] : [],
    "x-auth": op.auth,
    ...(op.scope ? { "x-scope": op.scope } : {}),
  };
}

export function openApiDocument(publicUrl: string): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) (paths[openApiPath(op.path)] ??= {})[op.method] = operation(op);
  return {
    openapi: "3.1.0",
    info: {
      title: "multishot",
      version: VERSION,
      summary: "One coding task as N parallel agent attempts in sandboxes: compare, pick a winner, iterate.",
      description: [
        "Every `/api` route wants `Authorization: Bearer <key>`. Scopes: `GET` routes need `runs:read`, other `/api/runs` routes `runs:write`, keys, Slack and webhooks `admin` (which implies the others).",
        "Another account's run answers 404. Errors are JSON `{error: {code, message, details?}}`.",
        "Limits: an account's attempts at once and runs per hour; beyond either, 429 with Retry-After. A body over 1 MB is a 413.",
      ].join("\n\n"),
    },
    servers: [{ url: publicUrl.replace(/\/$/, "") }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "An API key (msk_…): made by `POST /api/keys` or `npm run create-key`." },
        adminToken: { type: "http", scheme: "bearer", description: "The operator's ADMIN_TOKEN secret: accounts, their limits, the stats; nothing else." },
      },
      schemas: SCHEMAS,
    },
  };
}

// Loose: the key fields of what the routes answer (src/durable/view.ts has the full types).
const SCHEMAS: Record<string, JsonSchema> = {
  Error: {
    type: "object",
    required: ["error"],
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        properties: { code: { type: "string", examples: ["not_found", "validation_failed", "forbidden"] }, message: { type: "string" }, details: {} },
      },
    },
  },
  RunStarted: {
    type: "object",
    required: ["id", "status", "links"],
    properties: { id: { type: "string", examples: ["run_abcdefghijklmnopqrst"] }, status: { type: "string", enum: RUN_STATUSES }, links: fields("self", "events", "cancel") },
  },
  RunView: {
    type: "object",
    properties: {
      id: { type: "string" },
      status: { type: "string", enum: RUN_STATUSES },
      error: { type: ["string", "null"] },
      prompt: { type: "string" },
      agent: { type: "string" },
      config: { type: "object", description: "the run's request, defaults filled in, without its prompt" },
      createdAt: { type: "integer", description: "ms since epoch" },
      finishedAt: { type: ["integer", "null"] },
      rounds: { type: "array", items: ref("RoundView") },
      lastEventSeq: { type: "integer", description: "read /events?after= from here for only what follows" },
      links: fields("self", "events", "cancel"),
    },
  },
  RoundView: {
    type: "object",
    properties: {
      number: { type: "integer" },
      prompt: { type: "string" },
      status: { type: "string" },
      fromRound: { type: ["integer", "null"], description: "the round whose winner seeded this one" },
      winner: { oneOf: [{ type: "null" }, fields("attempt", "status", "error", "tarball")] },
      attempts: { type: "array", items: ref("AttemptView") },
      links: fields("winner", "next"),
    },
  },
  AttemptView: {
    type: "object",
    properties: {
      number: { type: "integer" },
      status: { type: "string" },
      sandboxId: { type: ["string", "null"] },
      exitCode: { type: ["integer", "null"] },
      error: { type: ["string", "null"] },
      retries: { type: "integer" },
      summary: { description: "the agent's final message, turns, cost" },
      usage: { description: "model calls through the gateway: calls, tokens, cost in USD" },
      diffStats: {},
      verify: {},
      timestamps: { type: "object", description: "when each phase began (ms since epoch)" },
      preview: { oneOf: [{ type: "null" }, fields("url", "expiresAt")] },
      links: fields("diff", "log", "cancel", "preview"),
    },
  },
  RunEvent: {
    type: "object",
    required: ["seq", "at", "type"],
    properties: { seq: { type: "integer" }, at: { type: "integer" }, round: { type: ["integer", "null"] }, attempt: { type: ["integer", "null"] }, type: { type: "string" }, data: {} },
  },
  Preview: {
    type: "object",
    required: ["attempt", "url", "expiresAt"],
    properties: { attempt: { type: "integer" }, url: { type: "string" }, expiresAt: { type: "integer" }, kind: { type: "string" }, port: { type: "integer" } },
  },
  PreviewFailed: {
    type: "object",
    required: ["attempt", "error"],
    properties: { attempt: { type: "integer" }, error: { type: "object", properties: { code: { const: "preview_failed" }, message: { type: "string", description: "the reason; the server's last log lines when it never answered" } } } },
  },
};
