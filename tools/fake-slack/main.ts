// CLI: `node tools/fake-slack/main.ts --token xoxb-… [--port <p>] [--quiet]`. Starts the fake of Slack's
// Web API (server.ts) and prints `listening on http://127.0.0.1:<port>`; give multishot
// SLACK_API_URL=http://127.0.0.1:<port>/api. One line per request goes to stderr unless --quiet.
import { parseArgs } from "node:util";
import { startFakeSlack } from "./server.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    token: { type: "string" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});

if (values.help || !values.token) {
  process.stdout.write("usage: node tools/fake-slack/main.ts --token <bot token> [--port <p>] [--quiet]\n");
  process.exit(values.help ? 0 : 2);
}

const server = await startFakeSlack({
  port: Number(values.port),
  token: values.token,
  ...(values.quiet ? {} : { log: (line: string) => void process.stderr.write(`[fake-slack] ${line}\n`) }),
});
process.stdout.write(`listening on ${server.url}\n`);

const stop = () => void server.close().then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
