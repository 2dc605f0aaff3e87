// Known secret values never reach stored text: transcripts, job output, error reasons, verify output,
// patches and logs pass through here before D1, R2 or an API answer sees them.
import type { Env } from "./env.ts";

const SECRET_NAMES = [
  "ANTHROPIC_API_KEY",
  "CLAUDE_CODE_OAUTH_TOKEN",
  "DAYTONA_API_KEY",
  "DAYTONA_JWT_TOKEN",
  "MULTISHOT_SIGNING_SECRET",
  "MULTISHOT_DEV_API_KEY",
  "ADMIN_TOKEN",
  "SLACK_SIGNING_SECRET",
  "SLACK_BOT_TOKEN",
] as const;

export type Redact = (text: string) => string;

/**
 * Signed URLs a sandbox holds (its credential gateway, ingest): their signature is a bearer
 * credential, so an agent that prints its environment must not put one in a transcript or a page.
 */
const SIGNED_PATH = /(\/(?:llm|ingest)\/[^/\s"'\\]+\/\d+\/\d+\/)[A-Za-z0-9_-]{20,}/g;

export function redactorFor(env: Env): Redact {
  const record = env as unknown as Record<string, unknown>;
  const secrets = SECRET_NAMES.map((name) => record[name])
    .filter((v): v is string => typeof v === "string" && v.length >= 8)
    .sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const s of secrets) if (out.includes(s)) out = out.split(s).join("[redacted]");
    return out.replace(SIGNED_PATH, (_m, prefix: string) => `${prefix}[redacted]`);
  };
}

/** Redacts every string inside a JSON-able value. */
export function redactDeep<T>(value: T, redact: Redact): T {
  return JSON.parse(redact(JSON.stringify(value))) as T;
}

/** Share link tokens in page paths, and bearer-like query parameters (preview tokens, signatures). */
const SHARE_TOKEN = /(\/r\/)mss_[A-Za-z0-9_-]{20,}/g;
const TOKEN_PARAM = /([?&](?:token|sig|signature|access_token|api_key|key|X-Amz-Signature|X-Amz-Credential)=)[^&\s"']+/gi;

/** Bearer credentials carried in URLs (share links, gateway and ingest paths, signed query strings), cut out. */
export function scrubUrls(text: string): string {
  return text
    .replace(SIGNED_PATH, (_m, prefix: string) => `${prefix}[redacted]`)
    .replace(SHARE_TOKEN, "$1mss_[redacted]")
    .replace(TOKEN_PARAM, "$1[redacted]");
}

let consoleScrubbed = false;

/**
 * The Worker's own log lines (console.*, which Workers Logs and `wrangler tail` keep) never carry a
 * bearer token from a URL: whatever a message or an error's text holds is scrubbed before it is written.
 */
export function scrubConsole(target: Pick<Console, "log" | "info" | "warn" | "error" | "debug"> = console): void {
  if (consoleScrubbed && target === console) return;
  if (target === console) consoleScrubbed = true;
  const scrubArg = (a: unknown): unknown => {
    if (typeof a === "string") return scrubUrls(a);
    if (a instanceof Error) return scrubUrls(a.stack ?? `${a.name}: ${a.message}`);
    if (a && typeof a === "object") {
      try {
        return JSON.parse(scrubUrls(JSON.stringify(a))) as unknown;
      } catch {
        return a;
      }
    }
    return a;
  };
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    const write = target[level].bind(target);
    target[level] = (...args: unknown[]) => write(...args.map(scrubArg));
  }
}
