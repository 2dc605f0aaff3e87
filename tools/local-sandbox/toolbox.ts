// The toolbox, `/toolbox/<sandboxId>/...`: what Daytona's in-sandbox daemon answers. This module has
// the info and process routes (execute, sessions, command logs and their WebSocket stream); files.ts
// has the file routes.
import type { IncomingMessage } from 'node:http';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import type { App, Req } from './context.ts';
import { count, failRequest, sleep } from './context.ts';
import { registerFileRoutes } from './files.ts';
import {
  DaytonaHttpError,
  Router,
  asV0190,
  daemonError,
  dispatch,
  optionalInt,
  optionalStringRecord,
  readJson,
  sendEmpty,
  sendJson,
} from './http-util.ts';
import { BASH, exitCodeOf, killGroup, spawnShell } from './proc.ts';
import type { LocalSandbox } from './sandboxes.ts';
import { HANG_COMMAND, SessionShellGone } from './sessions.ts';
import type { Session, SessionCommand, StreamFd } from './sessions.ts';

export interface ToolboxReq extends Req {
  readonly sandbox: LocalSandbox;
}

const router = new Router<ToolboxReq>();

router.on('GET', '/work-dir', (r) => sendJson(r.res, 200, { dir: r.sandbox.workDir }));
router.on('GET', '/user-home-dir', (r) => sendJson(r.res, 200, { dir: r.sandbox.homeDir }));
router.on('GET', '/version', (r) => sendJson(r.res, 200, { version: 'local-sandbox' }));

/** Combined output kept for one `execute` answer; a runaway command keeps only its last bytes. */
const MAX_EXECUTE_OUTPUT = 32 * 1024 * 1024;

router.on('POST', '/process/execute', async (r) => {
  const body = await readJson(r.req);
  if (typeof body.command !== 'string' || !body.command.trim()) throw new DaytonaHttpError(400, 'command is required');
  const command = body.command;
  const envs = optionalStringRecord(body.envs, 'envs');
  const timeout = optionalInt(body.timeout, 'timeout', 0) ?? 0;
  const cwd = typeof body.cwd === 'string' && body.cwd ? await existingDir(r.sandbox, body.cwd) : r.sandbox.workDir;
  const hang = r.app.faults.takeHang(command, r.sandbox.labels);

  // As Daytona's daemon: the command goes verbatim to a shell's stdin, in its own process group.
  // `exec 2>&1` first so stdout and stderr share one pipe and keep their true order.
  const child = spawnShell(['-c', `exec 2>&1; exec ${BASH}`], { cwd, env: r.sandbox.processEnv(envs), stdio: ['pipe', 'pipe', 'ignore'] });
  r.sandbox.adopt(child);
  const endWork = r.sandbox.beginWork();
  const chunks: Buffer[] = [];
  let size = 0;
  child.stdout?.on('data', (b: Buffer) => {
    chunks.push(b);
    size += b.length;
    while (size > MAX_EXECUTE_OUTPUT && chunks.length > 1) size -= chunks.shift()!.length;
  });
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(`${hang ? HANG_COMMAND : command}\n`);

  let timedOut = false;
  const onTimeout = (): void => {
    timedOut = true;
    killGroup(child.pid); // the whole group: background children of the command die too
  };
  const timer = timeout > 0 ? setTimeout(onTimeout, timeout * 1000) : undefined;
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: 127, signal: null }));
  });
  if (timer) clearTimeout(timer);
  endWork();
  // A background process may hold the pipe open for ever: give the rest of the output a moment only.
  await new Promise<void>((resolve) => {
    if (!child.stdout || child.stdout.readableEnded || child.stdout.destroyed) return resolve();
    const t = setTimeout(() => {
      child.stdout?.destroy();
      resolve();
    }, 200);
    child.stdout.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
  if (timedOut) {
    throw daemonError(408, `command execution timeout after ${timeout}s`, 'PROCESS_EXECUTION_TIMEOUT', {
      message: 'request timeout: command execution timeout',
    });
  }
  sendJson(r.res, 200, { exitCode: exitCodeOf(exit.code, exit.signal), result: Buffer.concat(chunks).toString('utf8') });
});

async function existingDir(sb: LocalSandbox, dir: string): Promise<string> {
  const abs = path.resolve(sb.workDir, dir.replace(/^~(?=\/|$)/, sb.homeDir));
  const st = await stat(abs).catch(() => undefined);
  if (!st?.isDirectory()) throw daemonError(400, `cwd ${dir} is not a directory`, 'INVALID_FILE_PATH');
  return abs;
}

function commandDto(c: SessionCommand): Record<string, unknown> {
  return c.done ? { id: c.id, command: c.command, exitCode: c.exitCode } : { id: c.id, command: c.command };
}

function sessionDto(s: Session): Record<string, unknown> {
  return { sessionId: s.id, commands: s.list().map(commandDto) };
}

router.on('POST', '/process/session', async (r) => {
  const body = await readJson(r.req);
  if (typeof body.sessionId !== 'string' || !body.sessionId) throw new DaytonaHttpError(400, 'sessionId is required');
  r.sandbox.createSession(body.sessionId);
  sendEmpty(r.res, 201);
});

router.on('GET', '/process/session', (r) => {
  sendJson(r.res, 200, [...r.sandbox.sessions.values()].map(sessionDto));
});

router.on('GET', '/process/session/:sid', (r, p) => sendJson(r.res, 200, sessionDto(r.sandbox.session(p.sid!))));

router.on('DELETE', '/process/session/:sid', (r, p) => {
  const s = r.sandbox.session(p.sid!);
  s.kill();
  r.sandbox.sessions.delete(s.id);
  sendEmpty(r.res, 204);
});

/** v0.190: the exec controller wraps whatever the session service returns (`failed to execute
 * command: %w`), so even a typed error reaches the middleware as an untyped 500
 * (apps/daemon/pkg/toolbox/process/session/execute.go 67-70). */
function execFailure(status: number, message: string, code: string | undefined, v0190Message: string): DaytonaHttpError {
  return daemonError(status, message, code, { message: `failed to execute command: ${v0190Message}`, untyped: true });
}

router.on('POST', '/process/session/:sid/exec', async (r, p) => {
  const body = await readJson(r.req);
  const s = r.sandbox.sessions.get(p.sid!);
  if (!s) throw execFailure(404, `session ${p.sid!} not found`, 'PROCESS_NOT_FOUND', 'not found: session not found');
  if (typeof body.command !== 'string' || !body.command.trim()) throw new DaytonaHttpError(400, 'command is required');
  const runAsync = body.runAsync === true || body.async === true;
  const ended = (): DaytonaHttpError =>
    execFailure(410, `session ${s.id} has ended`, 'SESSION_ENDED', 'bad request: failed to write command: write |1: broken pipe');
  if (s.ended && s.mode !== 'daemon') throw ended();
  let cmd: SessionCommand;
  try {
    cmd = s.exec(body.command, { hang: r.app.faults.takeHang(body.command, r.sandbox.labels), async: runAsync });
  } catch (err) {
    if (err instanceof SessionShellGone) throw ended();
    throw err;
  }
  if (runAsync) {
    sendJson(r.res, 202, { cmdId: cmd.id });
    return;
  }
  await cmd.settled();
  if (cmd.cancelled) throw execFailure(500, `session ${s.id} was cancelled`, undefined, 'bad request: session cancelled');
  const logs = await cmd.logs();
  sendJson(r.res, 200, { cmdId: cmd.id, ...logs, exitCode: cmd.exitCode });
});

function command(r: ToolboxReq, sid: string, cid: string): SessionCommand {
  const cmd = r.sandbox.session(sid).get(cid);
  if (!cmd) throw daemonError(404, `command ${cid} not found`, 'PROCESS_NOT_FOUND', { message: 'not found: command not found' });
  return cmd;
}

router.on('GET', '/process/session/:sid/command/:cid', (r, p) => sendJson(r.res, 200, commandDto(command(r, p.sid!, p.cid!))));

router.on('GET', '/process/session/:sid/command/:cid/logs', async (r, p) => {
  const cmd = command(r, p.sid!, p.cid!);
  if (r.url.searchParams.get('follow') !== 'true') {
    sendJson(r.res, 200, await cmd.logs());
    return;
  }
  // Plain-HTTP follow: the combined output as text, until the command ends.
  r.res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  let closed = false;
  r.res.on('close', () => (closed = true));
  await cmd.follow((_fd, data) => void r.res.write(data), () => closed);
  r.res.end();
});

registerFileRoutes(router);

/** Daytona's log framing: each frame starts with a 3-byte marker saying which stream it carries. */
const MARKERS: Record<StreamFd, Buffer> = { 1: Buffer.from([1, 1, 1]), 2: Buffer.from([2, 2, 2]) };

/** Finds the sandbox of a `/toolbox/<id>/...` request, refusing one that is gone or not running.
 * Lifecycle 'daytona' answers as the runner's toolbox proxy does (apps/runner/pkg/api/controllers/
 * proxy.go 66-92): a container that does not exist (yet, or any more) is 404, one without an IP
 * (stopped, starting, errored) is 400 "... Is the Sandbox started?" after the runner's 3 tries. */
export async function toolboxSandbox(app: App, id: string, path: string, method: string): Promise<LocalSandbox> {
  const sb = app.store.findById(id);
  if (!sb) throw new DaytonaHttpError(404, `Sandbox with ID ${id} not found`);
  if (sb.state === 'started') return sb;
  if (app.behaviour.lifecycle !== 'daytona') throw new DaytonaHttpError(400, `Sandbox is not running (state: ${sb.state})`);
  const runnerPath = `/sandboxes/${id}/toolbox${path}`;
  if (sb.state === 'creating' || sb.state === 'destroying' || sb.state === 'destroyed') {
    throw asV0190(
      new DaytonaHttpError(404, `not found: sandbox container not found: Error response from daemon: No such container: ${id}`),
      runnerPath,
      method,
    );
  }
  await sleep(300); // the runner's retries: 100 ms, then 200 ms
  throw asV0190(
    new DaytonaHttpError(400, 'bad request: failed to resolve container IP after 3 attempts: no IP address found. Is the Sandbox started?'),
    runnerPath,
    method,
  );
}

export async function handleToolbox(r: Req, sandboxId: string, rest: string): Promise<void> {
  const method = r.req.method ?? 'GET';
  const sandbox = await toolboxSandbox(r.app, sandboxId, rest, method);
  sandbox.trackRequest(r.res);
  const delay = r.app.faults.delay('toolbox', sandbox.labels);
  if (delay) await sleep(delay);
  const fault = r.app.faults.takeToolboxFailure(rest, sandbox.labels);
  if (fault) {
    count(r.app.counters.toolbox, `${method} (fault)`);
    return failRequest(r, fault);
  }
  const tr: ToolboxReq = { ...r, sandbox };
  const v0190 = r.app.behaviour.daemon === 'v0.190';
  const path = rest.split('?')[0] ?? rest;
  const name = await dispatch(router, method, rest, r.res, tr, v0190 ? (err) => asV0190(err, path, method) : undefined);
  count(r.app.counters.toolbox, name);
}

/**
 * Whether a log stream carries the stdout/stderr markers: only for a client that says it reads them
 * (an SDK version header of 0.27 or later, or X-Daytona-Split-Output: true); anyone else gets the bytes
 * alone (daytonaio/daytona v0.190.0 apps/daemon/pkg/session/common.go IsCombinedOutput).
 */
export function splitsOutput(headers: IncomingMessage['headers']): boolean {
  const version = String(headers['x-daytona-sdk-version'] ?? '');
  if (!version) return headers['x-daytona-split-output'] === 'true';
  const [major = 0, minor = 0] = version.split(/[.-]/).map(Number);
  return major > 0 || minor >= 27;
}

const LOGS_WS = /^\/process\/session\/([^/]+)\/command\/([^/]+)\/logs$/;

/** `.../command/<cid>/logs?follow=true` as a WebSocket: replay, then follow, binary frames with
 * stream markers, close 1000 when the command has ended and every byte was sent. */
export async function handleToolboxUpgrade(
  app: App,
  wss: WebSocketServer,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  sandboxId: string,
  rest: string,
): Promise<void> {
  const m = LOGS_WS.exec(rest);
  let cmd: SessionCommand | undefined;
  let sandbox: LocalSandbox | undefined;
  const method = req.method ?? 'GET';
  try {
    if (!m) throw new DaytonaHttpError(404, `no WebSocket endpoint at ${rest}`);
    sandbox = await toolboxSandbox(app, sandboxId, rest, method);
    const delay = app.faults.delay('toolbox', sandbox.labels);
    if (delay) await sleep(delay);
    // toolboxFailures match WebSocket paths too (`.../logs?follow=true`): a refused or dropped stream.
    const fault = app.faults.takeToolboxFailure(rest, sandbox.labels);
    if (fault === 'reset' || fault === 'lost') {
      count(app.counters.toolbox, 'WS (fault)');
      socket.destroy();
      return;
    }
    if (fault === 'hang') return; // never answered: the socket stays open, unanswered
    if (fault) throw new DaytonaHttpError(Number(fault), `injected fault: ${fault}`);
    const session = sandbox.session(decodeURIComponent(m[1]!));
    cmd = session.get(decodeURIComponent(m[2]!));
    if (!cmd) throw daemonError(404, `command ${m[2]!} not found`, 'PROCESS_NOT_FOUND', { message: 'not found: command not found' });
  } catch (err) {
    let e = err instanceof DaytonaHttpError ? err : new DaytonaHttpError(500, String(err));
    if (app.behaviour.daemon === 'v0.190') e = asV0190(e, rest, method);
    const body = JSON.stringify(e.body());
    socket.end(`HTTP/1.1 ${e.statusCode} Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    return;
  }
  count(app.counters.toolbox, 'WS /process/session/:sid/command/:cid/logs');
  // An open log stream is an open request through the proxy: activity while it lasts.
  sandbox.trackRequest(socket);
  const found = cmd;
  const split = splitsOutput(req.headers);
  // The v0.190 daemon's follow may never end: its reader hands the log's end (io.EOF) to an unbuffered
  // channel that two goroutines receive from, the socket writer and the loop that closes the socket
  // (apps/daemon/pkg/session/log.go 53-120 with internal/util/log_reader.go); when the writer takes it,
  // the socket stays open until the client leaves. Here it always stays open, the worst of the two.
  const closesOnExit = app.behaviour.daemon !== 'v0.190';
  wss.handleUpgrade(req, socket, head, (ws) => {
    let closed = false;
    ws.on('close', () => (closed = true));
    ws.on('error', () => (closed = true));
    const send = (fd: StreamFd, data: Buffer): Promise<void> =>
      new Promise((resolve) => ws.send(split ? Buffer.concat([MARKERS[fd], data]) : data, { binary: true }, () => resolve()));
    found
      .follow(send, () => closed)
      .then(() => {
        if (!closed && closesOnExit) ws.close(1000, 'command exited');
      })
      .catch(() => ws.close(1011, 'log stream failed'));
  });
}

