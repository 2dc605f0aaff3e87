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
