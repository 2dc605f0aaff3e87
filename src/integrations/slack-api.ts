// The few Slack Web API calls multishot makes (chat.postMessage, chat.update, views.open) and posts to
// a command's response_url. The bot token travels only in the Authorization header; no error message
// here ever contains it.
import type { Env } from "../env.ts";

const SLACK_TIMEOUT_MS = 10_000;

/** A call Slack refused or that never got an answer. `error` is Slack's own code (`not_in_channel`, `ratelimited`, …). */
export class SlackApiError extends Error {
  readonly method: string;
  readonly error: string;
  readonly retryAfterMs: number | null;

  constructor(method: string, error: string, retryAfterMs: number | null = null) {
    super(`Slack ${method} failed: ${error}`);
    this.method = method;
    this.error = error;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Worth trying again later: rate limits, Slack's own trouble, no answer. Anything else (a channel the
 * bot is not in, a revoked token, a message that is gone) will fail the same way every time.
 */
export function isRetryableSlackError(err: unknown): boolean {
  if (!(err instanceof SlackApiError)) return true;
  return ["ratelimited", "network", "http_error", "service_unavailable", "internal_error", "fatal_error", "request_timeout"].includes(err.error);
}

export class SlackApi {
  private readonly base: string;
  private readonly token: string | undefined;

  constructor(env: Pick<Env, "SLACK_API_URL" | "SLACK_BOT_TOKEN">) {
    this.base = (env.SLACK_API_URL ?? "https://slack.com/api").replace(/\/$/, "");
    this.token = env.SLACK_BOT_TOKEN;
  }

  get configured(): boolean {
    return Boolean(this.token);
  }

  async call<T extends object = Record<string, unknown>>(method: string, args: Record<string, unknown>): Promise<T & { ok: true }> {
    if (!this.token) throw new SlackApiError(method, "not_configured");
    let res: Response;
    try {
      res = await fetch(`${this.base}/${method}`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify(args),
        signal: AbortSignal.timeout(SLACK_TIMEOUT_MS),
      });
    } catch {
      throw new SlackApiError(method, "network");
    }
    if (res.status === 429) {
      await res.body?.cancel();
      const after = Number(res.headers.get("retry-after"));
      throw new SlackApiError(method, "ratelimited", Number.isFinite(after) && after > 0 ? after * 1000 : null);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new SlackApiError(method, res.status >= 500 ? "http_error" : `http_${res.status}`);
    }
    const body = (await res.json().catch(() => ({ ok: false, error: "invalid_response" }))) as { ok?: boolean; error?: string };
    if (!body.ok) throw new SlackApiError(method, body.error ?? "unknown_error");
    return body as T & { ok: true };
  }
}

/**
 * Posts a message to a command's or an action's response_url (good for 30 minutes, a few times): how an
 * ephemeral answer reaches the person after the first three seconds.
 */
export async function postToResponseUrl(url: string, message: Record<string, unknown>): Promise<void> {
  if (!/^https?:\/\//.test(url)) return;
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(SLACK_TIMEOUT_MS),
    });
    await res.body?.cancel();
    if (!res.ok) console.warn(`posting to a Slack response_url answered ${res.status}`);
  } catch (err) {
    console.warn("posting to a Slack response_url failed", err instanceof Error ? err.message : err);
  }
}
