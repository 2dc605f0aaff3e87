// Local sandbox server: speaks the Daytona API as @daytonaio/sdk 0.218 uses it, so the real SDK, unchanged,
// runs against `new Daytona({ apiKey: 'anything', apiUrl: '<url>/api' })`. Each sandbox is a folder and
// real processes on this machine.
//
// DEVELOPMENT AND TEST TOOL, NOT A SECURITY BOUNDARY: sandbox commands run as the server's own user with
// full access to the machine; any token is accepted. Never expose it beyond loopback.
//
//   /api/...            control plane (control.ts; snapshots: snapshot-routes.ts, snapshots.ts),
//                       socket.io notifications at /api/socket.io/
//   /toolbox/<id>/...   the in-sandbox daemon: info, process, sessions (toolbox.ts), files (files.ts)
//   /preview/...        preview proxy (preview.ts), ports remapped per sandbox by port-shim.c
//   /admin/...          leak/cost counters and fault injection for tests (admin.ts, faults.ts)
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { handleAdmin } from './admin.ts';
import type { App, Req } from './context.ts';
import { handleControl } from './control.ts';
import { Faults } from './faults.ts';
import type { FaultConfig } from './faults.ts';
import { DaytonaHttpError, sendError, sendJson } from './http-util.ts';
import { buildPortShim } from './port-shim.ts';
import { handlePreview, handlePreviewUpgrade } from './preview.ts';
import { resolveBehaviour } from './profile.ts';
import type { Behaviour, BehaviourOptions, EgressRule } from './profile.ts';
import { SandboxStore } from './sandboxes.ts';
import type { LocalSandbox, StateChange } from './sandboxes.ts';
import { SnapshotStore } from './snapshots.ts';
import { SocketIoHub } from './socket-io.ts';
import { handleToolbox, handleToolboxUpgrade } from './toolbox.ts';

export type { FaultConfig } from './faults.ts';
export type { Behaviour, BehaviourOptions, Profile } from './profile.ts';

/**
 * `profile` ('daytona' by default, or env LOCAL_SANDBOX_PROFILE) picks every behaviour of
 * BehaviourOptions at once; each can be set on its own over it (see profile.ts and README.md).
 */
export interface LocalSandboxServerOptions extends BehaviourOptions {
  /** 0 (default) picks a free port */
  port?: number;
  /** interface to listen on; default 127.0.0.1 */
  host?: string;
  /** data directory; default a fresh temporary directory, removed again by close() */
  root?: string;
  /** faults armed from the start (same JSON as `POST /admin/faults`) */
  faults?: FaultConfig;
  /** length of an auto-stop/auto-delete "minute"; default env LOCAL_SANDBOX_MINUTE_MS or 60000 */
  minuteMs?: number;
  /** latency added to every create; default env LOCAL_SANDBOX_CREATE_LATENCY_MS or 0 */
  createLatencyMs?: number;
  /** where warnings go; default stderr */
  log?: (line: string) => void;
}

export interface LocalSandboxServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `url + '/api'`: the SDK's `apiUrl` */
  apiUrl: string;
  port: number;
  root: string;
  /** the behaviours in force, after the profile and the overrides */
  behaviour: Behaviour;
  /** Kills every sandbox process and stops the server. Removes the root only if the server made it. */
  close(): Promise<void>;
}

function envNumber(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number >= 0`);
  return n;
}

function hostNpmCache(): string {
  return process.env.npm_config_cache || process.env.NPM_CONFIG_CACHE || path.join(os.homedir(), '.npm');
}

export async function startLocalSandboxServer(opts: LocalSandboxServerOptions = {}): Promise<LocalSandboxServer> {
  const log = opts.log ?? ((line: string) => void process.stderr.write(`[local-sandbox] ${line}\n`));
  const ownRoot = !opts.root;
  const root = opts.root ? path.resolve(opts.root) : await mkdtemp(path.join(os.tmpdir(), 'local-sandbox-'));
  await mkdir(root, { recursive: true });
  const minuteMs = opts.minuteMs ?? envNumber('LOCAL_SANDBOX_MINUTE_MS') ?? 60_000;
  if (!(minuteMs > 0)) throw new Error('minuteMs must be > 0');
  const createLatencyMs = opts.createLatencyMs ?? envNumber('LOCAL_SANDBOX_CREATE_LATENCY_MS') ?? 0;
  const behaviour = resolveBehaviour(opts);

  const shimPath = await buildPortShim(path.join(root, '.cache'), log);
  if (!shimPath && behaviour.egress === 'restricted') log('warning: without the port shim, restricted egress is not enforced');
  const faults = new Faults(opts.faults);
  if (createLatencyMs) faults.merge({ delayMs: { ...faults.snapshot().delayMs, create: createLatencyMs } });
  // Filled in once the server listens: its own address stands for app.daytona.io, which is on
  // Daytona's essential-services allowlist, so a restricted sandbox still reaches it.
  const serverEgressAllow: EgressRule[] = [];
  const storeOptions = { root, minuteMs, shimPath, npmCache: hostNpmCache(), behaviour, serverEgressAllow, log };
  const store = new SandboxStore(storeOptions);
  const snapshots = new SnapshotStore(storeOptions);
  const app: App = {
    store,
    snapshots,
    faults,
    previewSecret: randomBytes(32),
    revokedSignedTokens: new Set(),
    shimActive: !!shimPath,
    minuteMs,
    behaviour,
    counters: { api: {}, toolbox: {}, previewRequests: 0, socketIoConnections: 0 },
    baseUrl: '',
    log,
  };

  const hub = new SocketIoHub(() => app.counters.socketIoConnections++);
  store.on('created', (sb: LocalSandbox) => hub.emit('sandbox.created', sb.toDto(app.baseUrl)));
  store.on('state', (c: StateChange) =>
    hub.emit('sandbox.state.updated', { sandbox: c.sandbox.toDto(app.baseUrl), oldState: c.oldState, newState: c.newState }),
  );
  const logStreams = new WebSocketServer({ noServer: true });

  // No request timeout: a 200 MB upload on a slow link is a normal request. Idle keep-alive sockets live
  // longer than a client's, so the client always closes first and never reuses a socket being closed.
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => void onRequest(app, req, res));
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Upgraded sockets leave the HTTP server's bookkeeping: close() must end them itself.
  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const url = new URL(req.url ?? '/', 'http://local');
    const p = url.pathname;
    if (p === '/api/socket.io' || p === '/api/socket.io/') hub.handleUpgrade(req, socket, head, url);
    else if (p.startsWith('/toolbox/')) {
      const [id, rest] = splitToolboxPath(p);
      // It answers every failure on the socket itself: nothing is left to await here.
      void handleToolboxUpgrade(app, logStreams, req, socket, head, id, rest);
    } else if (p.startsWith('/preview/')) void handlePreviewUpgrade(app, req, socket, head, url);
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : Number(opts.port);
  const host = !opts.host || ['0.0.0.0', '::', '127.0.0.1', 'localhost'].includes(opts.host) ? '127.0.0.1' : opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  app.baseUrl = `http://${host}:${port}`;
  serverEgressAllow.push({ family: 4, address: '127.0.0.1', prefix: 32, port }, { family: 6, address: '::1', prefix: 128, port });

  let closing: Promise<void> | undefined;
  return {
    url: app.baseUrl,
    apiUrl: `${app.baseUrl}/api`,
    port,
    root,
    behaviour,
    close: () =>
      (closing ??= (async () => {
        hub.close();
        for (const ws of logStreams.clients) ws.terminate();
        logStreams.close();
        // No new connections while the sandboxes are torn down; resolves once every connection ended.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all([store.shutdown(), snapshots.shutdown()]);
        for (const socket of upgraded) socket.destroy();
        server.closeAllConnections();
        await closed;
        if (ownRoot) await rm(root, { recursive: true, force: true, maxRetries: 3 });
      })()),
  };
}

/** `/toolbox/<id>/<rest>` -> [id, '/<rest>'] */
function splitToolboxPath(p: string): [string, string] {
  const after = p.slice('/toolbox/'.length);
  const slash = after.indexOf('/');
  const id = decodeURIComponent(slash < 0 ? after : after.slice(0, slash));
  return [id, slash < 0 ? '/' : after.slice(slash)];
}

async function onRequest(app: App, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://local');
  } catch {
    sendError(res, new DaytonaHttpError(400, 'bad request URL'));
    return;
  }
  const r: Req = { app, req, res, url };
  const p = url.pathname;
  try {
    if (p.startsWith('/api/socket.io')) throw new DaytonaHttpError(400, 'socket.io is served over WebSocket only');
    if (p === '/api' || p.startsWith('/api/')) await handleControl(r, p.slice(4) || '/');
    else if (p.startsWith('/toolbox/')) {
      const [id, rest] = splitToolboxPath(p);
      await handleToolbox(r, id, rest);
    } else if (p.startsWith('/preview/')) await handlePreview(app, req, res, url);
    else if (p.startsWith('/admin/')) await handleAdmin(r, p.slice('/admin'.length));
    else if (p === '/' || p === '/health') sendJson(res, 200, { ok: true, name: 'local-sandbox', apiUrl: `${app.baseUrl}/api` });
    else throw new DaytonaHttpError(404, `Cannot ${req.method ?? 'GET'} ${p}`);
  } catch (err) {
    sendError(res, err);
  }
}
