// The 'daytona' profile's toolbox: the v0.190 daemon's 500 for a missing session, session commands
// through the daemon's own wrapper (a command that `exec`s away the shell never gets an exit code),
// sessions lost on a restart, auto-stop that running processes do not hold off, and the behaviour
// switches of /admin/behaviour.
import { describe, expect, it } from 'vitest';
import { resolveBehaviour } from '../../tools/local-sandbox/profile.ts';
import { rejection, sleep, useLocalSandbox, waitFor } from './helpers.ts';

const MINUTE_MS = 200;
const h = useLocalSandbox({ profile: 'daytona', minuteMs: MINUTE_MS, createPendingMs: 0, stateChangeMs: 100, destroyDelayMs: 200 });

async function behaviour(body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${h.server.url}/admin/behaviour`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function rawExec(sandboxId: string, sessionId: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${h.server.url}/toolbox/${sandboxId}/process/session/${sessionId}/exec`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ command: 'echo hi' }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const MISSING_SESSION_V0190 = {
  statusCode: 500,
  message: 'failed to execute command: not found: session not found',
  timestamp: '0001-01-01T00:00:00Z',
  path: '',
};

describe('daemon v0.190', () => {
  it('answers 500 in the middleware default shape for a command in a missing session (spec: 404)', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    expect(await rawExec(sb.id, 'nope')).toEqual({ status: 500, body: MISSING_SESSION_V0190 });
    const viaSdk = await rejection(sb.process.executeSessionCommand('nope', { command: 'echo hi' }));
    expect(viaSdk.statusCode).toBe(500);

    // The same call under the spec's daemon is a 404 with the local server's usual body.
    await behaviour({ daemon: 'spec' });
    try {
      const spec = await rawExec(sb.id, 'nope');
      expect(spec.status).toBe(404);
      expect(spec.body).toMatchObject({ statusCode: 404, code: 'PROCESS_NOT_FOUND' });
    } finally {
      await behaviour({ daemon: 'v0.190' });
    }
    await sb.delete();
  });
});

/** Follows a command's log over the WebSocket with these headers: frames as they came, and how it ended. */
async function followRaw(sandboxId: string, sid: string, cid: string, headers: Record<string, string>, forMs: number): Promise<{ bytes: Buffer; closed: number | null }> {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`${h.server.url.replace(/^http/, 'ws')}/toolbox/${sandboxId}/process/session/${sid}/command/${cid}/logs?follow=true`, { headers });
  const frames: Buffer[] = [];
  let closed: number | null = null;
  ws.on('message', (d: Buffer) => frames.push(d));
  ws.on('close', (code: number) => (closed = code));
  await sleep(forMs);
  ws.terminate();
  return { bytes: Buffer.concat(frames), closed };
}

describe('a followed log', () => {
  it('never closes under the v0.190 daemon, closes 1000 under the spec, and carries stream markers only for a client that reads them apart', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await sb.process.createSession('f');
    const cmd = await sb.process.executeSessionCommand('f', { command: 'echo out; echo err >&2', runAsync: true });
    await waitFor('the command to end', async () => ((await sb.process.getSessionCommand('f', cmd.cmdId!)).exitCode === 0) || undefined);

    const split = await followRaw(sb.id, 'f', cmd.cmdId!, { 'x-daytona-split-output': 'true' }, 600);
    expect(split.closed).toBeNull(); // ended long ago, still open
    expect(split.bytes).toEqual(Buffer.concat([Buffer.from([1, 1, 1]), Buffer.from('out\n'), Buffer.from([2, 2, 2]), Buffer.from('err\n')]));
    // No version header and no split header: the bytes alone (IsCombinedOutput).
    expect((await followRaw(sb.id, 'f', cmd.cmdId!, {}, 300)).bytes.toString()).toBe('out\nerr\n');

    await behaviour({ daemon: 'spec' });
    try {
      const spec = await followRaw(sb.id, 'f', cmd.cmdId!, { 'x-daytona-sdk-version': '0.218.0' }, 600);
      expect(spec.closed).toBe(1000);
      expect(spec.bytes.subarray(0, 3)).toEqual(Buffer.from([1, 1, 1]));
    } finally {
      await behaviour({ daemon: 'v0.190' });
    }
    await sb.delete();
  });
});

describe('sessions through the daemon wrapper', () => {
  it('runs commands in the session shell (cd persists, exit codes, logs)', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await sb.process.createSession('s');
    await sb.process.executeSessionCommand('s', { command: 'mkdir -p sub && cd sub && export X=42' });
    const r = await sb.process.executeSessionCommand('s', { command: 'echo "$X $(basename $PWD)"; echo err >&2; exit_code() { return 3; }; exit_code' });
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe('42 sub\n');
    expect(r.stderr).toBe('err\n');
    await sb.delete();
  });

  it('never gives an exit code to a command that execs away its shell (lenient sessions do)', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await sb.process.createSession('gone');
    const { cmdId } = await sb.process.executeSessionCommand('gone', { command: 'echo before; exec sleep 0.2', runAsync: true });
    await sleep(1200);
    const cmd = await sb.process.getSessionCommand('gone', cmdId!);
    expect(cmd.exitCode).toBeUndefined();
    expect((await sb.process.getSessionCommandLogs('gone', cmdId!)).stdout).toBe('before\n');

    await behaviour({ sessions: 'lenient' });
    try {
      await sb.process.createSession('lenient');
      const l = await sb.process.executeSessionCommand('lenient', { command: 'exec sleep 0.2', runAsync: true });
      const ended = await waitFor('lenient exit code', async () => (await sb.process.getSessionCommand('lenient', l.cmdId!)).exitCode);
      expect(ended).toBe(0);
    } finally {
      await behaviour({ sessions: 'daemon' });
    }
    await sb.delete();
  });

  it('forgets every session when the sandbox is started again', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 0 });
    await sb.process.createSession('old');
    await sb.process.executeSessionCommand('old', { command: 'echo x' });
    expect((await sb.process.listSessions()).map((s) => s.sessionId)).toEqual(['old']);
    await sb.stop();
    await sb.start();
    expect(await sb.process.listSessions()).toEqual([]);
    expect(await rawExec(sb.id, 'old')).toEqual({ status: 500, body: MISSING_SESSION_V0190 });
    await sb.delete();
  });
});

describe('auto-stop', () => {
  it('stops a sandbox whose only activity is a running process; a request resets the timer', async () => {
    const sb = await h.daytona.create({ autoStopInterval: 1 });
    await sb.process.createSession('busy');
    const t0 = Date.now();
    await sb.process.executeSessionCommand('busy', { command: 'sleep 30', runAsync: true });
    await waitFor('auto-stop', async () => ((await h.daytona.get(sb.id)).state === 'stopped' ? true : undefined), 8000);
    // Well before the command would end: the process did not count.
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await h.admin<{ autoStops: number }>('/stats')).autoStops).toBeGreaterThanOrEqual(1);

    // API and toolbox calls do count: kept busy with calls, it stays up for several intervals.
    const kept = await h.daytona.create({ autoStopInterval: 1 });
    for (let i = 0; i < 8; i++) {
      await sleep(MINUTE_MS / 2);
      await kept.process.executeCommand('true');
    }
    expect((await h.daytona.get(kept.id)).state).toBe('started');
    await Promise.all([sb.delete(), kept.delete()]);
  });
});

describe('/admin/behaviour', () => {
  it('answers the behaviours in force, merges a partial set, refuses unknown keys and bad values', async () => {
    const res = await fetch(`${h.server.url}/admin/behaviour`);
    const now = (await res.json()) as Record<string, unknown>;
    expect(now).toMatchObject({ profile: 'daytona', lifecycle: 'daytona', daemon: 'v0.190', sessions: 'daemon', egress: 'restricted' });
    expect(now.quota).toEqual({ cpu: 10, memory: 10, disk: 30 });

    expect(await behaviour({ nope: 1 })).toEqual({ status: 400, body: expect.objectContaining({ message: expect.stringContaining('unknown behaviour "nope"') }) });
    expect((await behaviour({ destroyDelayMs: -1 })).status).toBe(400);
    expect((await behaviour({ egressAllow: ['example.com:80'] })).status).toBe(400);
    // Nothing changed by a refused request.
    expect(((await (await fetch(`${h.server.url}/admin/behaviour`)).json()) as { destroyDelayMs: number }).destroyDelayMs).toBe(200);

    const lenient = await behaviour({ profile: 'lenient', daemon: 'v0.190' });
    expect(lenient.body).toMatchObject({ profile: 'lenient', lifecycle: 'lenient', daemon: 'v0.190', egress: 'open', quota: {} });
    // Lenient from the next request on: a delete is gone at once.
    const sb = await h.daytona.create();
    await sb.delete();
    expect((await rejection(h.daytona.get(sb.id))).statusCode).toBe(404);

    const back = await behaviour({ profile: 'daytona', stateChangeMs: 100, destroyDelayMs: 200, createPendingMs: 0 });
    expect(back.body).toMatchObject({ profile: 'daytona', lifecycle: 'daytona', destroyDelayMs: 200 });
  });

  it('picks the profile from LOCAL_SANDBOX_PROFILE, daytona when unset; options win over it', () => {
    expect(resolveBehaviour({}, {})).toMatchObject({ profile: 'daytona', lifecycle: 'daytona', egress: 'restricted', daemon: 'v0.190', quota: { cpu: 10, memory: 10, disk: 30 } });
    expect(resolveBehaviour({}, { LOCAL_SANDBOX_PROFILE: 'lenient' })).toMatchObject({ profile: 'lenient', lifecycle: 'lenient', egress: 'open', quota: {} });
    expect(resolveBehaviour({ egress: 'open', quotaCpu: 4 }, { LOCAL_SANDBOX_PROFILE: 'daytona' })).toMatchObject({
      egress: 'open',
      quota: { cpu: 4, memory: 10, disk: 30 },
    });
    expect(() => resolveBehaviour({}, { LOCAL_SANDBOX_PROFILE: 'harsh' })).toThrow('LOCAL_SANDBOX_PROFILE');
  });
});
