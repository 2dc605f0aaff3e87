// The D1 schema: the index of accounts, runs, rounds and attempts.
// While a run is live its Durable Object is the source of truth; every state change is mirrored here
// so that listing, pages and other surfaces can read without waking the object.
// Migrations are generated from this file (`npm run db:generate`) and never edited by hand.
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { ATTEMPT_STATUSES, ROUND_STATUSES, RUN_STATUSES, WINNER_STATUSES } from "../vocabulary.ts";

const createdAt = () =>
  integer("created_at", { mode: "number" })
    .notNull()
    .default(sql`(unixepoch('subsec') * 1000)`);

export const accounts = sqliteTable("accounts", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: createdAt(),
  /** Attempts of the account's runs working at once; a run or round that would go beyond gets 429. */
  maxConcurrentAttempts: integer("max_concurrent_attempts").notNull().default(8),
  /** Runs the account may start in any hour. */
  runsPerHour: integer("runs_per_hour").notNull().default(60),
  /** The model budget of a run that sets none (USD, gateway calls); null: DEFAULT_RUN_BUDGET_USD. */
  runBudgetUsd: real("run_budget_usd"),
  /** What the account's runs may spend on gateway model calls in a calendar month (UTC); null: ACCOUNT_MONTHLY_BUDGET_USD. */
  monthlyBudgetUsd: real("monthly_budget_usd"),
});

/** API keys are stored as SHA-256 hashes; `prefix` is the short visible part used to find a key. */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    name: text("name").notNull().default(""),
    prefix: text("prefix").notNull(),
    hash: text("hash").notNull(),
    scopes: text("scopes").notNull().default("runs:read runs:write"),
    createdAt: createdAt(),
    lastUsedAt: integer("last_used_at", { mode: "number" }),
    revokedAt: integer("revoked_at", { mode: "number" }),
  },
  (t) => [uniqueIndex("api_keys_hash").on(t.hash), index("api_keys_prefix").on(t.prefix)],
);

/**
 * Idempotency-Key: the first answer to a creating POST, replayed for the same key within 24 hours.
 * A row without a status is a request still being answered.
 */
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    accountId: text("account_id").notNull(),
    key: text("key").notNull(),
    /** `METHOD path` and a hash of the body: the same key with another request is refused. */
    route: text("route").notNull(),
    requestHash: text("request_hash").notNull(),
    status: integer("status"),
    response: text("response"),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.key] })],
);

export const runs = sqliteTable(
  "runs",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    status: text("status", { enum: RUN_STATUSES }).notNull(),
    prompt: text("prompt").notNull(),
    agent: text("agent").notNull(),
    /** The validated run request (prompt aside), as JSON: attempts, model, variations, base, verify, limits. */
    config: text("config", { mode: "json" }).notNull(),
    attemptCount: integer("attempt_count").notNull(),
    error: text("error"),
    createdAt: createdAt(),
    updatedAt: integer("updated_at", { mode: "number" }).notNull(),
    finishedAt: integer("finished_at", { mode: "number" }),
  },
  (t) => [index("runs_account_created").on(t.accountId, t.createdAt)],
);

export const rounds = sqliteTable(
  "rounds",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id),
    number: integer("number").notNull(),
    prompt: text("prompt").notNull(),
    status: text("status", { enum: ROUND_STATUSES }).notNull(),
    /** The round whose winner this round starts from; null for the first round. */
    fromRound: integer("from_round"),
    winnerAttempt: integer("winner_attempt"),
    /** packing -> stored, or failed (the pick can then be made again). */
    winnerStatus: text("winner_status", { enum: WINNER_STATUSES }),
    winnerError: text("winner_error"),
    /** The winner's workspace tarball in R2: key, byte size and SHA-256 (hex), once stored. */
    tarballKey: text("tarball_key"),
    tarballSize: integer("tarball_size"),
    tarballSha256: text("tarball_sha256"),
    createdAt: createdAt(),
    finishedAt: integer("finished_at", { mode: "number" }),
  },
  (t) => [primaryKey({ columns: [t.runId, t.number] })],
);

export const attempts = sqliteTable(
  "attempts",
  {
    runId: text("run_id")
      .notNull()
      .references(() => runs.id),
    round: integer("round").notNull(),
    /** 1-based position of the attempt in its round. */
    number: integer("number").notNull(),
    status: text("status", { enum: ATTEMPT_STATUSES }).notNull(),
    sandboxId: text("sandbox_id"),
    exitCode: integer("exit_code"),
    error: text("error"),
    retries: integer("retries").notNull().default(0),
    /** {final message, turns, costUsd} from the agent's result event. */
    summary: text("summary", { mode: "json" }),
    /** {files, additions, deletions} of `git diff` against the round's base. */
    diffStats: text("diff_stats", { mode: "json" }),
    /** {command, exitCode, passed, outputTail}. */
    verify: text("verify", { mode: "json" }),
    /** Milliseconds since epoch at which each phase began, keyed by status. */
    timestamps: text("timestamps", { mode: "json" }),
    /** What the attempt's gateway model calls cost (USD): the account's monthly spend is the sum. */
    costUsd: real("cost_usd").notNull().default(0),
    /**
     * Until when a preview keeps this (ended) attempt's sandbox running: such a sandbox counts toward the
     * account's attempts at once, as a working attempt does (src/db/limit-queries.ts).
     */
    previewUntil: integer("preview_until", { mode: "number" }),
    updatedAt: integer("updated_at", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.round, t.number] })],
);

export type ShareScope = "view" | "control";

/**
 * Share links: `/r/<token>` shows one run to whoever holds the token. Only the token's SHA-256 is
 * stored; a view link shows the run, a control link also lets its holder pick winners, start rounds
 * and cancel. Revoked or expired links show nothing.
 */
export const shareLinks = sqliteTable(
  "share_links",
  {
    id: text("id").primaryKey(),
    runId: text("run_id")
      .notNull()
      .references(() => runs.id),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    scope: text("scope").$type<ShareScope>().notNull(),
    hash: text("hash").notNull(),
    createdAt: createdAt(),
    expiresAt: integer("expires_at", { mode: "number" }),
    revokedAt: integer("revoked_at", { mode: "number" }),
  },
  (t) => [uniqueIndex("share_links_hash").on(t.hash), index("share_links_run").on(t.runId)],
);

// ---- Webhooks and Slack (src/routes/webhooks.ts, src/routes/slack.ts, src/integrations/) ----
// No secret is stored here: a webhook endpoint's secret is derived from MULTISHOT_SIGNING_SECRET, the
// endpoint's id and its secret version; Slack link codes are stored as hashes; the share link a Slack
// run's messages point at is sealed (AES-GCM) under a key derived the same way.

export type WebhookKind = "inbound" | "outbound";

/**
 * An account's webhook endpoint. Inbound: `POST /hooks/<id>` turns a signed payload into a run through
 * `template`. Outbound: the account's run events (`events`) are POSTed, signed, to `url`.
 */
export const webhookEndpoints = sqliteTable(
  "webhook_endpoints",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    kind: text("kind").$type<WebhookKind>().notNull(),
    name: text("name").notNull().default(""),
    /** Inbound: the template that maps a payload to a run request (see src/integrations/templates.ts). */
    template: text("template", { mode: "json" }),
    /** Outbound: where events are POSTed, and which event types. */
    url: text("url"),
    events: text("events", { mode: "json" }).$type<string[]>(),
    /** Part of the secret's derivation: rotating the secret bumps it, and the old secret stops working. */
    secretVersion: integer("secret_version").notNull().default(1),
    /**
     * How the secret is written: `standard` (Standard Webhooks' whsec_ + base64) for endpoints made or
     * rotated since Standard Webhooks, `legacy` (whsec_ + base64url) for older ones; the key is the same.
     */
    secretFormat: text("secret_format").$type<"standard" | "legacy">().notNull().default("legacy"),
    /** After a rotation, the previous version, which keeps signing (and verifying) until `previousSecretUntil`. */
    previousSecretVersion: integer("previous_secret_version"),
    previousSecretUntil: integer("previous_secret_until", { mode: "number" }),
    /** Outbound: set when the receiver answered 410 Gone; nothing is sent to it until it is enabled again. */
    disabledAt: integer("disabled_at", { mode: "number" }),
    disabledReason: text("disabled_reason"),
    /** SHA-256 of the creating request when it carried an Idempotency-Key (the id is derived from the key). */
    requestHash: text("request_hash"),
    createdAt: createdAt(),
    deletedAt: integer("deleted_at", { mode: "number" }),
  },
  (t) => [index("webhook_endpoints_account").on(t.accountId, t.createdAt)],
);

/** Inbound deliveries an endpoint accepted, by the sender's delivery id: a redelivery answers the first run. */
export const webhookReceipts = sqliteTable(
  "webhook_receipts",
  {
    endpointId: text("endpoint_id")
      .notNull()
      .references(() => webhookEndpoints.id),
    /**
     * What makes a delivery the same delivery: an id the sender signed (multishot's X-Multishot-Delivery
     * inside its signature), else a hash of the signature and the body. Never an unsigned header.
     */
    deliveryId: text("delivery_id").notNull(),
    /** The sender's own delivery id when it was not signed (X-GitHub-Delivery): shown, never trusted. */
    senderDeliveryId: text("sender_delivery_id"),
    /** "started" (runId set) or "ignored" (the template's `when` did not match; `reason` says why). */
    outcome: text("outcome").$type<"started" | "ignored">().notNull(),
    runId: text("run_id"),
    reason: text("reason"),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.deliveryId] }), index("webhook_receipts_created").on(t.endpointId, t.createdAt)],
);

export type DeliveryStatus = "pending" | "delivered" | "failed";

/**
 * Outbound deliveries: one per event and endpoint. The run's Durable Object owns the delivery (its
 * outbox) and mirrors each try here, which is the log `GET /api/webhooks/:id/deliveries` reads.
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    endpointId: text("endpoint_id")
      .notNull()
      .references(() => webhookEndpoints.id),
    accountId: text("account_id").notNull(),
    runId: text("run_id").notNull(),
    /** The run event's sequence number: deliveries of one run reach an endpoint in this order. */
    seq: integer("seq").notNull(),
    eventType: text("event_type").notNull(),
    /** The JSON body, byte for byte as sent (signatures are made per try, with that try's timestamp). */
    payload: text("payload").notNull(),
    status: text("status").$type<DeliveryStatus>().notNull(),
    tries: integer("tries").notNull().default(0),
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    nextTryAt: integer("next_try_at", { mode: "number" }),
    createdAt: createdAt(),
    deliveredAt: integer("delivered_at", { mode: "number" }),
  },
  (t) => [index("webhook_deliveries_endpoint").on(t.endpointId, t.createdAt)],
);

/** A Slack workspace (userId "") or one Slack user, linked to a multishot account. */
export const slackLinks = sqliteTable(
  "slack_links",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id")
      .notNull()
      .references(() => accounts.id),
    teamId: text("team_id").notNull(),
    userId: text("user_id").notNull().default(""),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("slack_links_team_user").on(t.teamId, t.userId), index("slack_links_account").on(t.accountId)],
);

/** One-time codes an account admin makes and a Slack user redeems with `/multishot link <code>`. */
export const slackLinkCodes = sqliteTable("slack_link_codes", {
  /** SHA-256 of the code. */
  hash: text("hash").primaryKey(),
  accountId: text("account_id")
    .notNull()
    .references(() => accounts.id),
  scope: text("scope").$type<"team" | "user">().notNull(),
  createdAt: createdAt(),
  expiresAt: integer("expires_at", { mode: "number" }).notNull(),
  usedAt: integer("used_at", { mode: "number" }),
});

/** Runs started from Slack: where their progress messages go. */
export const slackRuns = sqliteTable("slack_runs", {
  runId: text("run_id").primaryKey(),
  accountId: text("account_id").notNull(),
  teamId: text("team_id").notNull(),
  channelId: text("channel_id").notNull(),
  userId: text("user_id").notNull(),
  /** The run page's share link, sealed (AES-GCM, key derived from MULTISHOT_SIGNING_SECRET). */
  shareUrlSealed: text("share_url_sealed"),
  createdAt: createdAt(),
});

/** One row per scheduled sandbox sweep: what it saw, deleted (and verified gone), and failed to delete. */
export const sweeps = sqliteTable(
  "sweeps",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: integer("at", { mode: "number" }).notNull(),
    seen: integer("seen").notNull(),
    deleted: integer("deleted").notNull(),
    failed: integer("failed").notNull(),
    /** {sandboxId: reason} for each delete, and {sandboxId: error} for each failure, as JSON. */
    detail: text("detail", { mode: "json" }).notNull(),
  },
  (t) => [index("sweeps_at").on(t.at)],
);

/**
 * Which runs an API key has opened an event stream or live socket on: revoking the key closes them
 * there at once (src/routes/keys.ts). A row is written when a stream opens and goes with the revoke,
 * or with the cron sweep after a month.
 */
export const keyStreams = sqliteTable(
  "key_streams",
  {
    keyId: text("key_id").notNull(),
    runId: text("run_id").notNull(),
    openedAt: integer("opened_at", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.runId] })],
);

/**
 * Attempts a start or a next round holds against its account's limits while it starts: from the
 * atomic check until the run's Durable Object has mirrored its attempts here (then the row goes). Two
 * starts racing each other both count them, so together they can never pass a limit (src/limits.ts).
 */
export const limitReservations = sqliteTable(
  "limit_reservations",
  {
    id: text("id").primaryKey(),
    accountId: text("account_id").notNull(),
    runId: text("run_id").notNull(),
    attempts: integer("attempts").notNull(),
    /** 1 when it is a new run (it counts toward runs per hour), 0 for a next round */
    newRun: integer("new_run").notNull(),
    createdAt: integer("created_at", { mode: "number" }).notNull(),
  },
  (t) => [index("limit_reservations_account").on(t.accountId)],
);
