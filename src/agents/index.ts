// Agent kinds: how each is installed in a sandbox, the command line it runs with, and the files it needs.
// The prompt travels as a file (never through a shell's quoting), and the agent's stdout is
// stream-json, read by ./stream-json.ts whatever the kind.
import type { Env } from "../env.ts";
import type { AgentKind } from "../run-request.ts";
import demoSource from "./demo.agent.mjs";

/** Where multishot keeps its own files in a sandbox: the runner, job scripts and outputs, the prompt. */
export const MS_DIR = "$HOME/.multishot";
export const WORKSPACE = "$HOME/workspace";

export interface AgentFile {
  /** Relative to the sandbox user's home. */
  path: string;
  content: string;
}

export interface AgentDefinition {
  kind: AgentKind;
  files(): AgentFile[];
  /** A bash script: exit 0 installed, 75 a transient (network) failure worth retrying, anything else final. */
  installScript(): string;
  /** The command that runs the agent in the workspace, reading the prompt from $MS_DIR/prompt.txt. */
  command(opts: { maxTurns: number; model?: string }): string;
  /** Environment for the whole sandbox: settings only, never a credential. */
  sandboxEnv(env: Env): Record<string, string>;
  /**
   * What the agent process alone gets in its environment (never the sandbox's, so install, seed, collect
   * and verify never see it; src/durable/job-inputs.ts agentEnv says how it gets there). With `gateway`
   * (API-key mode) that is the attempt's own gateway URL and no credential at all; otherwise the OAuth
   * token (which the agent's code can read).
   */
  agentEnv(env: Env, gateway: string | null): Record<string, string>;
  /**
   * Whether, in API-key mode, the agent cannot work without the credential gateway (or the key itself,
   * under AGENT_CREDENTIALS=direct): its sandbox must reach PUBLIC_URL, or the operator must choose.
   */
  needsGateway(env: Env): boolean;
  /** Under AGENT_CREDENTIALS=direct with no gateway: the key itself, for the agent's command only. */
  directEnv(env: Env): Record<string, string>;
  /** It runs without a model credential too (the demo agent): one it may not have is left out, not a failure. */
  credentialOptional?: boolean;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Turns a failed npm/curl output into exit 75 when it looks like the network, so it is retried. */
const NETWORK_PATTERN = "ECONNRESET|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|ECONNREFUSED|socket hang up|network";

const claudeCode: AgentDefinition = {
  kind: "claude-code",
  files: () => [],
  installScript: () => `set -o pipefail
export PATH="$HOME/.local/bin:$PATH"
if command -v claude >/dev/null 2>&1 && claude --version; then echo "claude is already installed"; exit 0; fi
if curl -fsSL --connect-timeout 10 --max-time 300 https://claude.ai/install.sh | bash && claude --version; then exit 0; fi
echo "install.sh did not work; installing @anthropic-ai/claude-code with npm"
npm install -g @anthropic-ai/claude-code > "${MS_DIR}/npm-install.log" 2>&1
code=$?
tail -n 30 "${MS_DIR}/npm-install.log"
if [ $code -ne 0 ]; then
  if grep -qiE '${NETWORK_PATTERN}' "${MS_DIR}/npm-install.log"; then exit 75; fi
  exit 1
fi
hash -r
claude --version || { echo "claude is not on PATH after npm install"; exit 1; }
`,
  // The prompt goes in on stdin: never parsed as an option, never limited by the argument size.
  command: ({ maxTurns, model }) =>
    `export PATH="$HOME/.local/bin:$PATH"; claude -p --output-format stream-json --verbose ` +
    `--dangerously-skip-permissions --max-turns ${maxTurns}${model ? ` --model ${quote(model)}` : ""} < "${MS_DIR}/prompt.txt"`,
  sandboxEnv: (env) => ({
    IS_SANDBOX: "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    NO_PROXY: "127.0.0.1,localhost",
  }),
  agentEnv: (env, gateway): Record<string, string> =>
    gateway
      ? // The gateway holds the real key; the CLI just needs some key to send.
        { ANTHROPIC_BASE_URL: gateway, ANTHROPIC_API_KEY: GATEWAY_PLACEHOLDER_KEY }
      : {
          ...(env.ANTHROPIC_BASE_URL ? { ANTHROPIC_BASE_URL: env.ANTHROPIC_BASE_URL } : {}),
          ...(env.CLAUDE_CODE_OAUTH_TOKEN ? { CLAUDE_CODE_OAUTH_TOKEN: env.CLAUDE_CODE_OAUTH_TOKEN } : {}),
        },
  // With an OAuth token as well, an attempt that cannot reach the gateway falls back to it.
  needsGateway: (env) => Boolean(env.ANTHROPIC_API_KEY) && !env.CLAUDE_CODE_OAUTH_TOKEN,
  directEnv: (env): Record<string, string> => ({
    ...(env.ANTHROPIC_API_KEY ? { ANTHROPIC_API_KEY: env.ANTHROPIC_API_KEY } : {}),
    ...(env.ANTHROPIC_BASE_URL ? { ANTHROPIC_BASE_URL: env.ANTHROPIC_BASE_URL } : {}),
  }),
};

const demo: AgentDefinition = {
  kind: "demo",
  files: () => [{ path: ".multishot/demo-agent.mjs", content: demoSource }],
  installScript: () => `set -e
mkdir -p "${MS_DIR}/bin"
install -m 755 "${MS_DIR}/demo-agent.mjs" "${MS_DIR}/bin/multishot-demo-agent"
"${MS_DIR}/bin/multishot-demo-agent" --version
`,
  command: ({ maxTurns, model }) =>
    `"${MS_DIR}/bin/multishot-demo-agent" -p --output-format stream-json --verbose ` +
    `--max-turns ${maxTurns}${model ? ` --model ${quote(model)}` : ""} < "${MS_DIR}/prompt.txt"`,
  sandboxEnv: () => ({}),
  // The demo agent makes model calls only when its prompt asks ([llm:n]), with the credential claude-code
  // would get: the gateway in API-key mode, the token in OAuth mode.
  agentEnv: (env, gateway) => claudeCode.agentEnv(env, gateway),
  // Without the gateway it still runs; only a prompt asking for model calls ([llm:n]) makes none.
  needsGateway: () => false,
  directEnv: () => ({}),
  credentialOptional: true,
};

/** What agents send as their API key in API-key mode: not a secret; the gateway URL is the credential. */
export const GATEWAY_PLACEHOLDER_KEY = "multishot-gateway";

export const AGENTS: Record<AgentKind, AgentDefinition> = { "claude-code": claudeCode, demo };

export { quote as shellQuote };
