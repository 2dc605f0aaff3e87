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
  /** The version installed, and accepted when a sandbox has it already (a snapshot): pinned, never "latest". */
  version: string;
  files(): AgentFile[];
  /**
   * A bash script: exit 0 installed, 75 a transient (network) failure worth retrying, anything else final.
   * It skips the install when the pinned version is there already, and says which it was on its last
   * line of note, `multishot-agent: preinstalled <version>` or `multishot-agent: installed <version>`.
   */
  installScript(): string;
  /** Commands for a snapshot's image (`npm run snapshot`) that preinstall the pinned version. */
  snapshotCommands(): string[];
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

function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Turns a failed npm/curl output into exit 75 when it looks like the network, so it is retried. */
const NETWORK_PATTERN = "ECONNRESET|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|ECONNREFUSED|socket hang up|network";

/** The marker an install script prints: how the agent came to be there. */
export const AGENT_SETUP_MARKER = "multishot-agent:";

const CLAUDE_CODE_VERSION = "2.1.332";

const claudeCode: AgentDefinition = {
  kind: "claude-code",
  version: CLAUDE_CODE_VERSION,
  files: () => [],
  installScript: () => `set -o pipefail
export PATH="$HOME/.local/bin:$PATH"
want=${CLAUDE_CODE_VERSION}
found() { command -v claude >/dev/null 2>&1 && claude --version 2>/dev/null | head -n 1; }
have=$(found)
case "$have" in "$want"|"$want "*) echo "claude $have is preinstalled"; echo "${AGENT_SETUP_MARKER} preinstalled $want"; exit 0 ;; esac
[ -n "$have" ] && echo "claude here reports $have, not $want: installing $want"
if curl -fsSL --connect-timeout 10 --max-time 300 https://claude.ai/install.sh | bash -s "$want"; then
  hash -r
  case "$(found)" in "$want"|"$want "*) echo "${AGENT_SETUP_MARKER} installed $want"; exit 0 ;; esac
fi
echo "install.sh did not work; installing @anthropic-ai/claude-code@$want with npm"
npm install -g "@anthropic-ai/claude-code@$want" > "${MS_DIR}/npm-install.log" 2>&1
code=$?
tail -n 30 "${MS_DIR}/npm-install.log"
if [ $code -ne 0 ]; then
  if grep -qiE '${NETWORK_PATTERN}' "${MS_DIR}/npm-install.log"; then exit 75; fi
  exit 1
fi
hash -r
have=$(found)
case "$have" in "$want"|"$want "*) ;; *) echo "claude reports '$have' after npm install, not $want"; exit 1 ;; esac
echo "$have"
echo "${AGENT_SETUP_MARKER} installed $want"
`,
  snapshotCommands: () => [`npm install -g --no-audit --no-fund @anthropic-ai/claude-code@${CLAUDE_CODE_VERSION} && claude --version`],
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

/** The demo agent's version, as `multishot-demo-agent --version` prints it (src/agents/demo.agent.mjs). */
const DEMO_VERSION = /const VERSION = "([^ "]+)/.exec(demoSource)?.[1] ?? "unknown";
/** Where the demo agent is found: its own install first, then PATH (a snapshot's). */
const DEMO_PATH = `export PATH="${MS_DIR}/bin:$PATH"`;

const demo: AgentDefinition = {
  kind: "demo",
  version: DEMO_VERSION,
  files: () => [{ path: ".multishot/demo-agent.mjs", content: demoSource }],
  installScript: () => `set -e
${DEMO_PATH}
want=${DEMO_VERSION}
have=$(command -v multishot-demo-agent >/dev/null 2>&1 && multishot-demo-agent --version 2>/dev/null | head -n 1 || true)
case "$have" in "$want "*) echo "$have is preinstalled"; echo "${AGENT_SETUP_MARKER} preinstalled $want"; exit 0 ;; esac
mkdir -p "${MS_DIR}/bin"
install -m 755 "${MS_DIR}/demo-agent.mjs" "${MS_DIR}/bin/multishot-demo-agent"
"${MS_DIR}/bin/multishot-demo-agent" --version
echo "${AGENT_SETUP_MARKER} installed $want"
`,
  // Into npm's global bin, which is on PATH wherever \`npm install -g\` works (the image's or, locally, the
  // sandbox's own prefix, NPM_CONFIG_PREFIX: \`npm prefix -g\` masks the UUID in that path as "***"). One
  // line: a Dockerfile's RUN takes no here-document.
  snapshotCommands: () => [
    `bin="\${NPM_CONFIG_PREFIX:-$(npm prefix -g)}/bin" && mkdir -p "$bin" && echo ${base64Utf8(demoSource)} | base64 -d > "$bin/multishot-demo-agent" && chmod 755 "$bin/multishot-demo-agent" && multishot-demo-agent --version`,
  ],
  command: ({ maxTurns, model }) =>
    `${DEMO_PATH}; multishot-demo-agent -p --output-format stream-json --verbose ` +
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
