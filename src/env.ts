// The Worker's bindings and configuration. The bindings and wrangler.toml's [vars] are generated from
// wrangler.toml into worker-configuration.d.ts (`npm run types`; a test fails when it is stale), so this
// file imports nothing of the Worker's own; beside them, the secrets (`wrangler secret put`) and the
// optional tuning variables. Every variable here is listed in the README's configuration table.

/**
 * From wrangler.toml: DB, ARTIFACTS, RUN_COORDINATOR; DAYTONA_API_URL (the Daytona control plane, e.g.
 * https://app.daytona.io/api or the local sandbox server's /api) and PUBLIC_URL.
 */
export interface Env extends WorkerBindings {
  /** Secret. Daytona API key; absent in local mode (the local sandbox server accepts any key). */
  DAYTONA_API_KEY?: string;
  /** Secret. Alternative to DAYTONA_API_KEY, together with DAYTONA_ORGANIZATION_ID. */
  DAYTONA_JWT_TOKEN?: string;
  DAYTONA_ORGANIZATION_ID?: string;
  /** Daytona region. */
  DAYTONA_TARGET?: string;
  /** Snapshot sandboxes are created from when a run names none (`npm run snapshot` builds one with the agents). */
  DAYTONA_SNAPSHOT?: string;
  /** Image a sandbox is made from when its run asks for resources (Daytona: resources only with an image). */
  DAYTONA_IMAGE?: string;

  /** DNS over HTTPS (JSON API) that outbound webhook hosts are resolved with, to refuse private addresses. */
  DNS_RESOLVER_URL?: string;
  /** Days a share link lives when made without `expiresIn` (Slack's view links too). Default 30. */
  SHARE_LINK_DAYS?: string;

  /** Secret. Signs per-attempt ingest URLs. */
  MULTISHOT_SIGNING_SECRET?: string;
  /** Secret. The operator's token: creates accounts (POST /api/accounts), sets their limits, reads /api/admin/stats. */
  ADMIN_TOKEN?: string;
  /** Local mode only: a valid API key of the local account. */
  MULTISHOT_DEV_API_KEY?: string;
  /** `1`: local mode (set by `npm start` when it runs the local sandbox server; never in a deployment). */
  MULTISHOT_LOCAL?: string;
  /** Set by `npm start` for each start: /health echoes it, so start-up knows the Worker answering is its own. */
  MULTISHOT_BOOT_ID?: string;
  /** Secret. Given to claude-code attempts (API-key mode). */
  ANTHROPIC_API_KEY?: string;
  /** Secret. OAuth-token mode for claude-code: passed to the agent process in its sandbox. */
  CLAUDE_CODE_OAUTH_TOKEN?: string;
  /** `1`: the operator shares CLAUDE_CODE_OAUTH_TOKEN among more than one account knowingly (refused otherwise). */
  CLAUDE_CODE_OAUTH_SHARED?: string;
  /** Optional: where claude-code attempts send model calls (a gateway or a local fake). */
  ANTHROPIC_BASE_URL?: string;
  /**
   * API-key mode when a sandbox cannot reach PUBLIC_URL (Daytona Tiers 1 and 2): `gateway` (default) fails
   * such an attempt at once with the reason; `direct` hands the key to the agent process itself.
   */
  AGENT_CREDENTIALS?: string;
  /** The gateway budget (USD) of a run that sets no `limits.budgetUsd`, unless its account has its own. Default 10. */
  DEFAULT_RUN_BUDGET_USD?: string;
  /** What an account's runs may spend on gateway model calls per calendar month (USD), unless it has its own. Default 100. */
  ACCOUNT_MONTHLY_BUDGET_USD?: string;

  /** Secret. Verifies Slack's requests to /slack/commands and /slack/interactions (the app's Signing Secret). */
  SLACK_SIGNING_SECRET?: string;
  /** Secret. The Slack app's bot token (xoxb-…): posts and updates run progress messages, opens modals. */
  SLACK_BOT_TOKEN?: string;
  /** Slack's Web API base, https://slack.com/api by default (tests point it at tools/fake-slack). */
  SLACK_API_URL?: string;

  /** Tuning, mostly for tests: retry backoff base and cap (ms), poll interval (ms), max retries. */
  RETRY_BASE_MS?: string;
  RETRY_CAP_MS?: string;
  RETRY_LIMIT?: string;
  POLL_INTERVAL_MS?: string;
  /** The longest wait (ms) for one Daytona API or toolbox answer without its own timeout (30000). */
  DAYTONA_REQUEST_TIMEOUT_MS?: string;
  /** Minutes after the last preview request before the preview's server is stopped. */
  PREVIEW_IDLE_MINUTES?: string;
  /** Bytes per part of a winner's tarball upload (min 5 MiB). */
  UPLOAD_PART_BYTES?: string;
  /** The largest winner tarball a round may store, in bytes (2 GiB). */
  WINNER_MAX_BYTES?: string;
}

/**
 * Local mode, which `npm start` (and the test setup) says with MULTISHOT_LOCAL=1, and only when it runs
 * the local sandbox server: the dev API key works, http webhook URLs are allowed, and a missing
 * MULTISHOT_SIGNING_SECRET falls back to a fixed development one. Never inferred from a missing Daytona
 * key: a deployment that forgot its key would otherwise sign URLs with a secret anyone can read here.
 */
export function isLocalMode(env: Env): boolean {
  return env.MULTISHOT_LOCAL === "1" && !env.DAYTONA_API_KEY && !env.DAYTONA_JWT_TOKEN;
}
