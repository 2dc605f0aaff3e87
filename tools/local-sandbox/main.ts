// CLI: `npm run local-sandbox -- --port 3030 [--host 127.0.0.1] [--root <dir>] [--create-latency-ms <n>]
// [--minute-ms <n>] [--profile daytona|lenient] [behaviour flags, see --help]`. Prints `listening on
// http://127.0.0.1:<port>` once ready; SIGINT/SIGTERM kill every sandbox process and exit. A development
// and test tool, not a security boundary (see README.md).
import { parseArgs } from 'node:util';
import { startLocalSandboxServer } from './server.ts';
import type { LocalSandboxServerOptions } from './server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string' },
    root: { type: 'string' },
    'create-latency-ms': { type: 'string' },
    'minute-ms': { type: 'string' },
    profile: { type: 'string' },
    lifecycle: { type: 'string' },
    'create-pending-ms': { type: 'string' },
    'state-change-ms': { type: 'string' },
    'destroy-delay-ms': { type: 'string' },
    'snapshot-build-min-ms': { type: 'string' },
    daemon: { type: 'string' },
    sessions: { type: 'string' },
    'auto-stop-activity': { type: 'string' },
    egress: { type: 'string' },
    'egress-allow': { type: 'string' },
    'egress-external': { type: 'string' },
    'sandbox-network': { type: 'string' },
    'quota-cpu': { type: 'string' },
    'quota-memory': { type: 'string' },
    'quota-disk': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(
    [
      'usage: npm run local-sandbox -- --port <p> [--host <addr>] [--root <dir>] [--create-latency-ms <n>] [--minute-ms <n>]',
      '  --profile daytona|lenient          every behaviour below at once (default: env LOCAL_SANDBOX_PROFILE, else daytona)',
      '  --lifecycle daytona|lenient        409/400 state rules, delete marks, toolbox refused unless started',
      '  --create-pending-ms <n>            time in `creating` before `started`',
      '  --state-change-ms <n>              time in `starting` / `stopping`',
      '  --destroy-delay-ms <n>             time from the delete mark to the sandbox being gone',
      '  --snapshot-build-min-ms <n>        least time a snapshot build is `building` (default 2000)',
      '  --daemon v0.190|spec               toolbox error shapes of the v0.190 daemon, or of the OpenAPI spec',
      '  --sessions daemon|lenient          session commands through the daemon\'s own wrapper',
      '  --auto-stop-activity requests|processes   whether running commands keep a sandbox from auto-stopping',
      '  --egress open|restricted           restricted: only --egress-allow (and the sandbox\'s own ports)',
      '  --egress-allow <host:port,...>     e.g. 127.0.0.1:4000,127.0.0.1:4001',
      '  --egress-external allow|refuse     whether a restricted sandbox reaches non-loopback addresses',
      '  --sandbox-network enforce|ignore   whether a create\'s networkBlockAll / networkAllowList limit its processes',
      '  --quota-cpu <n> --quota-memory <GiB> --quota-disk <GiB>   totals across sandboxes',
      '',
    ].join('\n'),
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

function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) {
    process.stderr.write(`--${name} must be one of ${allowed.join(', ')}\n`);
    process.exit(2);
  }
  return v as T;
}

const opts: LocalSandboxServerOptions = {
  port: num('port', values.port) ?? 0,
  log: (line) => void process.stderr.write(`[local-sandbox] ${line}\n`),
};
if (values.host) opts.host = values.host;
if (values.root) opts.root = values.root;
const latency = num('create-latency-ms', values['create-latency-ms']);
if (latency !== undefined) opts.createLatencyMs = latency;
const minute = num('minute-ms', values['minute-ms']);
if (minute !== undefined) opts.minuteMs = minute;

const set = <K extends keyof LocalSandboxServerOptions>(k: K, v: LocalSandboxServerOptions[K] | undefined): void => {
  if (v !== undefined) opts[k] = v;
};
set('profile', choice('profile', values.profile, ['daytona', 'lenient'] as const));
set('lifecycle', choice('lifecycle', values.lifecycle, ['daytona', 'lenient'] as const));
set('createPendingMs', num('create-pending-ms', values['create-pending-ms']));
set('stateChangeMs', num('state-change-ms', values['state-change-ms']));
set('destroyDelayMs', num('destroy-delay-ms', values['destroy-delay-ms']));
set('snapshotBuildMinMs', num('snapshot-build-min-ms', values['snapshot-build-min-ms']));
set('daemon', choice('daemon', values.daemon, ['v0.190', 'spec'] as const));
set('sessions', choice('sessions', values.sessions, ['daemon', 'lenient'] as const));
set('autoStopActivity', choice('auto-stop-activity', values['auto-stop-activity'], ['requests', 'processes'] as const));
set('egress', choice('egress', values.egress, ['open', 'restricted'] as const));
if (values['egress-allow'] !== undefined) opts.egressAllow = values['egress-allow'].split(',').filter((e) => e.trim());
set('egressExternal', choice('egress-external', values['egress-external'], ['allow', 'refuse'] as const));
set('sandboxNetwork', choice('sandbox-network', values['sandbox-network'], ['enforce', 'ignore'] as const));
set('quotaCpu', num('quota-cpu', values['quota-cpu']));
set('quotaMemory', num('quota-memory', values['quota-memory']));
set('quotaDisk', num('quota-disk', values['quota-disk']));

const server = await startLocalSandboxServer(opts);
process.stdout.write(`listening on ${server.url}\n`);
if (!values.root) process.stderr.write(`[local-sandbox] data in ${server.root} (removed on exit)\n`);
process.stderr.write(`[local-sandbox] profile ${server.behaviour.profile}: ${JSON.stringify(server.behaviour)}\n`);

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
