// `npm start` with a Daytona key: can a sandbox reach PUBLIC_URL? One small sandbox is made, asked to
// fetch PUBLIC_URL/health, and deleted; the answer and what follows from it are printed. On Daytona's
// Tiers 1 and 2 it cannot (only an allowlist is reachable: daytona.io/docs/en/network-limits), and
// multishot runs anyway; only API-key mode needs a choice (AGENT_CREDENTIALS).
import type { Env } from "../src/env.ts";
import { Sandboxes } from "../src/sandbox/client.ts";

export interface ReachResult {
  reaches: boolean;
  /** what curl printed: the HTTP status, or 000 when nothing answered */
  answer: string;
}

/** Probes from a fresh sandbox; the sandbox is deleted whatever happens. */
export async function probeReach(env: Record<string, string | undefined>, publicUrl: string): Promise<ReachResult> {
  const sandboxes = new Sandboxes(env as unknown as Env);
  const id = await sandboxes.create({
    labels: { "multishot-probe": "reach" },
    envVars: {},
    autoStopInterval: 5,
    autoDeleteInterval: 0,
    ...(env.DAYTONA_SNAPSHOT ? { snapshot: env.DAYTONA_SNAPSHOT } : {}),
  });
  try {
    const url = `${publicUrl.replace(/\/$/, "")}/health`;
    const res = await sandboxes.exec(id, `curl -s -o /dev/null -m 5 -w '%{http_code}' '${url.replace(/'/g, "")}' || true`, 30);
    const answer = res.output.trim().slice(-3) || "000";
    return { reaches: answer === "200", answer };
  } finally {
    await sandboxes.delete(id).catch(() => {});
  }
}

/** What the operator reads at start. */
export function describeReach(r: ReachResult, publicUrl: string, env: Record<string, string | undefined>): string {
  if (r.reaches) {
    return `sandboxes reach PUBLIC_URL (${publicUrl}): runner reports and the credential gateway are used`;
  }
  const apiKeyMode = Boolean(env.ANTHROPIC_API_KEY) && !env.CLAUDE_CODE_OAUTH_TOKEN;
  const credentials = !apiKeyMode
    ? "no agent credential depends on it"
    : env.AGENT_CREDENTIALS === "direct"
      ? "AGENT_CREDENTIALS=direct: claude-code attempts get the API key itself (see the README for what that weakens)"
      : "API-key mode with AGENT_CREDENTIALS=gateway: claude-code attempts will fail at once; set AGENT_CREDENTIALS=direct or CLAUDE_CODE_OAUTH_TOKEN, or make PUBLIC_URL reachable";
  return (
    `sandboxes cannot reach PUBLIC_URL (${publicUrl}; curl from a sandbox answered ${r.answer}), as on Daytona's Tiers 1 and 2: ` +
    `runs are carried by polling and the toolbox (no runner reports, no gateway); ${credentials}`
  );
}
