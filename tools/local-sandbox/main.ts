// CLI: `npm run local-sandbox -- --port 3030 [--host 127.0.0.1] [--root <dir>] [--create-latency-ms <n>]
// [--minute-ms <n>]`. Prints `listening on http://127.0.0.1:<port>` once ready; SIGINT/SIGTERM kill every
// sandbox process and exit. A development and test tool, not a security boundary (see README.md).
import { parseArgs } from 'node:util';
import { startLocalSandboxServer } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string' },
    root: { type: 'string' },
    'create-latency-ms': { type: 'string' },
    'minute-ms': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(
    'usage: npm run local-sandbox -- --port <p> [--host <addr>] [--root <dir>] [--create-latency-ms <n>] [--minute-ms <n>]\n',
  );
  process.exit(0);
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`--${name} must be a number >= 0\n`);
    process.exit(2);
  }
  return n;
}

const opts: Parameters<typeof startLocalSandboxServer>[0] = {
  port: num('port', values.port) ?? 0,
  log: (line) => void process.stderr.write(`[local-sandbox] ${line}\n`),
};
if (values.host) opts.host = values.host;
if (values.root) opts.root = values.root;
const latency = num('create-latency-ms', values['create-latency-ms']);
if (latency !== undefined) opts.createLatencyMs = latency;
const minute = num('minute-ms', values['minute-ms']);
if (minute !== undefined) opts.minuteMs = minute;

const server = await startLocalSandboxServer(opts);
process.stdout.write(`listening on ${server.url}\n`);
if (!values.root) process.stderr.write(`[local-sandbox] data in ${server.root} (removed on exit)\n`);

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`[local-sandbox] ${signal}: stopping every sandbox process\n`);
  server.close().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`[local-sandbox] shutdown failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

// `npm run` starts us through `sh -c`, and a SIGTERM to npm ends npm and the shell but never reaches
// this process. Under npm, a changed parent means the launcher is gone: stop rather than leak every
// sandbox process.
if (process.env.npm_lifecycle_event) {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop('launcher exited');
  }, 500).unref();
}
