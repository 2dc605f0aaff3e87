// Preview URLs, in path form (a local machine rarely resolves Daytona's `{port}-{id}.domain` names):
//   /preview/<sandboxId>/<port>/<path>   token as header X-Daytona-Preview-Token, query
//                                        DAYTONA_SANDBOX_AUTH_KEY (then kept in a cookie), or none
//                                        for a public sandbox
//   /preview/signed/<token>/<path>       the token itself carries sandbox, port and expiry (HMAC)
// Requests and WebSocket upgrades are forwarded to the port the sandbox's program really listens on
// (see port-shim.c). The proxied program sees the path without the prefix; absolute links it writes
// (`/assets/x.js`) therefore miss the prefix, which is acceptable for a development tool.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { App } from './context.ts';
import { DaytonaHttpError, sendError } from './http-util.ts';
import type { LocalSandbox } from './sandboxes.ts';

const b64url = (b: Buffer): string => b.toString('base64url');

export function signPreviewToken(secret: Buffer, sandboxId: string, port: number, expiresAtMs: number): string {
  // The expiry to the millisecond: rounded down to the second, a 1-second link could be dead on arrival.
  const payload = b64url(Buffer.from(JSON.stringify({ s: sandboxId, p: port, e: expiresAtMs })));
  const mac = b64url(createHmac('sha256', secret).update(payload).digest());
  return `${payload}.${mac}`;
}

function verifySignedToken(app: App, token: string): { sandboxId: string; port: number } {
  const [payload, mac] = token.split('.');
  if (!payload || !mac) throw new DaytonaHttpError(401, 'invalid signed preview token');
  const expected = createHmac('sha256', app.previewSecret).update(payload).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new DaytonaHttpError(401, 'invalid signed preview token');
  }
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { s: string; p: number; e: number };
  if (app.revokedSignedTokens.has(token)) throw new DaytonaHttpError(410, 'signed preview URL has been expired');
  if (claims.e <= Date.now()) throw new DaytonaHttpError(410, 'signed preview URL has expired');
  return { sandboxId: claims.s, port: claims.p };
}

interface Target {
  sandbox: LocalSandbox;
  port: number;
  /** path and query to send to the program */
  forwardPath: string;
  /** cookie to set so that later requests of a browser need no token in the URL */
  setCookie?: string;
}

const TOKEN_QUERY = 'DAYTONA_SANDBOX_AUTH_KEY';
const TOKEN_HEADER = 'x-daytona-preview-token';

function cookieName(sandboxId: string, port: number): string {
  return `daytona-preview-${sandboxId.slice(0, 8)}-${port}`;
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of String(req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/** Resolves `/preview/...` to a sandbox and port, checking the token. Throws Daytona-shaped errors. */
function resolveTarget(app: App, req: IncomingMessage, url: URL): Target {
  const parts = url.pathname.split('/');
  // ['', 'preview', a, b, ...rest]
  const rest = (n: number): string => '/' + parts.slice(n).join('/');
  const query = new URLSearchParams(url.search);
  let target: Target;
  if (parts[2] === 'signed') {
    const { sandboxId, port } = verifySignedToken(app, parts[3] ?? '');
    const sandbox = app.store.findById(sandboxId);
    if (!sandbox) throw new DaytonaHttpError(404, `Sandbox ${sandboxId} not found`);
    target = { sandbox, port, forwardPath: rest(4) };
  } else {
    const sandbox = app.store.findById(parts[2] ?? '');
    if (!sandbox) throw new DaytonaHttpError(404, `Sandbox ${parts[2] ?? ''} not found`);
    const port = Number(parts[3]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DaytonaHttpError(400, 'invalid port');
    target = { sandbox, port, forwardPath: rest(4) };
    if (!sandbox.params.public) {
      const fromQuery = query.get(TOKEN_QUERY);
      const given = String(req.headers[TOKEN_HEADER] ?? '') || fromQuery || readCookie(req, cookieName(sandbox.id, port)) || '';
      const ok = given.length === sandbox.previewToken.length && timingSafeEqual(Buffer.from(given), Buffer.from(sandbox.previewToken));
      if (!ok) throw new DaytonaHttpError(401, 'missing or invalid preview token');
      if (fromQuery) {
        target.setCookie = `${cookieName(sandbox.id, port)}=${fromQuery}; Path=/preview/${sandbox.id}/${port}; HttpOnly; SameSite=Lax`;
      }
    }
  }
  query.delete(TOKEN_QUERY);
  const qs = query.toString();
  target.forwardPath = target.forwardPath.replace(/\/{2,}/g, '/') + (qs ? `?${qs}` : '');
  if (target.sandbox.state !== 'started') throw new DaytonaHttpError(503, 'Sandbox is not running');
  return target;
}

/** The real port behind a sandbox port: the shim's mapping, or the port itself when ports are not
 * remapped (no compiler). Without a mapping nothing in the sandbox listens there: no fallback to the
 * host's port, which would belong to someone else. */
async function realPort(app: App, sandbox: LocalSandbox, port: number): Promise<number> {
  // The shim leaves ports below 1024 alone (see port-shim.c), and without it nothing is remapped.
  if (!app.shimActive || port < 1024) return port;
  try {
    const n = Number((await readFile(path.join(sandbox.portsDir, String(port)), 'utf8')).trim());
    if (Number.isInteger(n) && n > 0) return n;
  } catch {
    /* no mapping */
  }
  throw new DaytonaHttpError(502, `no process in sandbox ${sandbox.id} is listening on port ${port}`);
}

/** Which loopback a real port answers on. Dev servers that listen on `localhost` often get only ::1;
 * the answer is remembered per port (and forgotten when a connection is refused). */
const loopbackOf = new Map<number, string>();

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function loopbackFor(port: number): Promise<string> {
  const known = loopbackOf.get(port);
  if (known) return known;
  const host = (await canConnect('127.0.0.1', port)) ? '127.0.0.1' : (await canConnect('::1', port)) ? '::1' : '127.0.0.1';
  loopbackOf.set(port, host);
  return host;
}

function forgetOnRefusal(port: number, err: NodeJS.ErrnoException): void {
  if (err.code === 'ECONNREFUSED') loopbackOf.delete(port);
}

function forwardedHeaders(req: IncomingMessage, prefix: string): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = { ...req.headers };
  delete headers[TOKEN_HEADER];
  headers['x-forwarded-prefix'] = prefix;
  headers['x-forwarded-host'] = req.headers.host ?? '';
  headers['x-forwarded-proto'] = 'http';
  return headers;
}

/** `/preview/<id>/<port>` or `/preview/signed/<token>`: what the program's paths are mounted under. */
function prefixOf(url: URL): string {
  return url.pathname.split('/').slice(0, 4).join('/');
}

/** The sandbox and the real (remapped) port a preview request goes to. */
async function resolveUpstream(app: App, req: IncomingMessage, url: URL): Promise<{ target: Target; port: number }> {
  const target = resolveTarget(app, req, url);
  return { target, port: await realPort(app, target.sandbox, target.port) };
}

export async function handlePreview(app: App, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  app.counters.previewRequests++;
  let target: Target;
  let port: number;
  try {
    ({ target, port } = await resolveUpstream(app, req, url));
  } catch (err) {
    sendError(res, err);
    return;
  }
  // Activity while the request lasts (Daytona's proxy refreshes it every 50 s during a request).
  target.sandbox.trackRequest(res);
  const upstream = http.request({
    // No pooled keep-alive sockets: a sandbox's real port is an ephemeral one that a later sandbox's
    // server may get again, and a socket pooled for the old server would answer it with a hang-up.
    agent: false,
    host: await loopbackFor(port),
    port,
    method: req.method,
    path: target.forwardPath,
    headers: forwardedHeaders(req, prefixOf(url)),
  });
  upstream.on('response', (up) => {
    const headers = { ...up.headers };
    if (target.setCookie) {
      const existing = headers['set-cookie'] ?? [];
      headers['set-cookie'] = [...existing, target.setCookie];
    }
    res.writeHead(up.statusCode ?? 502, headers);
    up.pipe(res);
  });
  upstream.on('error', (err) => {
    forgetOnRefusal(port, err);
    if (!res.headersSent) sendError(res, new DaytonaHttpError(502, `preview upstream failed: ${err.message}`));
    else res.destroy();
  });
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
}

/** WebSocket (and any other) upgrade through the preview: a raw byte pipe after the first request. */
export async function handlePreviewUpgrade(app: App, req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
  let target: Target;
  let port: number;
  try {
    ({ target, port } = await resolveUpstream(app, req, url));
  } catch (err) {
    const e = err instanceof DaytonaHttpError ? err : new DaytonaHttpError(500, String(err));
    const body = JSON.stringify(e.body());
    socket.end(`HTTP/1.1 ${e.statusCode} ${http.STATUS_CODES[e.statusCode] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    return;
  }
  app.counters.previewRequests++;
  target.sandbox.trackRequest(socket);
  const upstream = net.connect(port, await loopbackFor(port));
  const headers = forwardedHeaders(req, prefixOf(url));
  const lines = [`${req.method ?? 'GET'} ${target.forwardPath} HTTP/1.1`];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const value of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${String(value)}`);
  }
  upstream.on('connect', () => {
    upstream.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  const close = (): void => {
    upstream.destroy();
    socket.destroy();
  };
  upstream.on('error', (err) => {
    forgetOnRefusal(port, err);
    close();
  });
  socket.on('error', close);
  socket.on('close', () => upstream.destroy());
  upstream.on('close', () => socket.destroy());
}
