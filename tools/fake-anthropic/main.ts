// CLI: `node tools/fake-anthropic/main.ts --port <p> [--quiet]`. Starts the scripted fake of Anthropic's
// Messages API (server.ts) with its default script and prints `listening on http://127.0.0.1:<port>` once
// ready; one line per request goes to stderr unless --quiet. SIGINT/SIGTERM stop it.
import { parseArgs } from 'node:util';
import { startFakeAnthropic } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write('usage: node tools/fake-anthropic/main.ts --port <p> [--quiet]\n');
  process.exit(0);
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('--port must be an integer 0..65535 (0 = any free port)\n');
  process.exit(2);
}

const server = await startFakeAnthropic({
  port,
  ...(values.quiet ? {} : { log: (line: string) => void process.stderr.write(`[fake-anthropic] ${line}\n`) }),
});
process.stdout.write(`listening on ${server.url}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  server.close().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`[fake-anthropic] shutdown failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
