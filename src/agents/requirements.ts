// What an agent needs of the service before a run may use it. Apart from src/agents/index.ts, which
// imports the programs that run inside sandboxes: routes that only check a request stay free of them.
import type { Env } from "../env.ts";
import type { AgentKind } from "../run-request.ts";

/** Why this service cannot run the agent (a credential it needs is not set), or null when it can. */
export function agentUnavailable(env: Env, agent: AgentKind): string | null {
  if (agent !== "claude-code" || env.ANTHROPIC_API_KEY || env.CLAUDE_CODE_OAUTH_TOKEN) return null;
  return 'agent "claude-code" needs ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN set on this service, and neither is; send "agent": "demo" to try multishot without one';
}
