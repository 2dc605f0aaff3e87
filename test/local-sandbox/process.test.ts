// Commands and sessions through the real SDK: real bash processes in the sandbox's folder.
import { DaytonaProcessExecutionTimeoutError, DaytonaTimeoutError } from '@daytonaio/sdk';
import type { Sandbox } from '@daytonaio/sdk';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isAlive, sleep, useLocalSandbox, waitFor } from './helpers.ts';

const h = useLocalSandbox();
let sb: Sandbox;

beforeAll(async () => {
  sb = await h.daytona.create({ envVars: { FROM_CREATE: 'created' } });
});

describe('info and execute', () => {
  it('has its own home and work dir inside the sandbox folder', async () => {
    const home = await sb.getUserHomeDir();
    const work = await sb.getWorkDir();
    expect(home).toContain(`/sandboxes/${sb.id}/home`);
    expect(work).toBe(`${home}/workspace`);
    const r = await sb.process.executeCommand('echo "$HOME|$PWD|$TMPDIR|$NPM_CONFIG_PREFIX|$FROM_CREATE"; command -v node');
    const [line, node] = r.result.trim().split('\n');
    expect(line).toBe(`${home}|${work}|${path.dirname(home!)}/tmp|${home}/.npm-global|created`);
    expect(node).toMatch(/node$/);
    // `npm install -g` stays inside: npm itself reports the sandbox's prefix (npm masks the
    // UUID-like sandbox id in its output, so compare around it)
    const prefix = (await sb.process.executeCommand('npm prefix -g')).result.trim();
    expect(prefix.startsWith(`${h.server.root}/sandboxes/`)).toBe(true);
    expect(prefix.endsWith('/home/.npm-global')).toBe(true);
  });

  it('runs a command with cwd and env, combining stdout and stderr, with its exit code', async () => {
    await sb.process.executeCommand('mkdir -p sub/dir');
    const r = await sb.process.executeCommand('echo out-$GREETING; echo err >&2; basename "$PWD"; exit 7', 'sub/dir', { GREETING: 'hi' });
    expect(r.exitCode).toBe(7);
    expect(r.result).toBe('out-hi\nerr\ndir\n');
  });

  it('kills the whole process group on timeout and answers 408', async () => {
    const pidFile = path.join((await sb.getWorkDir())!, 'bg.pid');
    const started = Date.now();
    const err = await sb.process.executeCommand(`sleep 30 & echo $! > ${pidFile}; sleep 30`, undefined, undefined, 1).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(err).toBeInstanceOf(DaytonaProcessExecutionTimeoutError);
    expect(err).toBeInstanceOf(DaytonaTimeoutError);
    expect((err as DaytonaTimeoutError).statusCode).toBe(408);
    const bgPid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor('the background sleep to die', () => !isAlive(bgPid) || undefined);
  });
});

describe('sessions', () => {
  it('keeps cd and export between commands', async () => {
    await sb.process.createSession('state');
    await sb.process.executeSessionCommand('state', { command: 'mkdir -p deep/er && cd deep/er && export KEPT=yes' });
    const r = await sb.process.executeSessionCommand('state', { command: 'echo "$KEPT $(basename $PWD)"; echo warn >&2; false' });
    expect(r.stdout).toBe('yes er\n');
    expect(r.stderr).toBe('warn\n');
    expect(r.output).toBe('yes er\nwarn\n');
    expect(r.exitCode).toBe(1);
  });

  it('runs async commands one at a time; exitCode appears when done; logs one-shot', async () => {
    await sb.process.createSession('async');
    const first = await sb.process.executeSessionCommand('async', { command: 'sleep 0.5; echo first', runAsync: true });
    const second = await sb.process.executeSessionCommand('async', { command: 'echo second; exit 3', runAsync: true });
    expect(first.cmdId).toBeTruthy();
    const running = await sb.process.getSessionCommand('async', first.cmdId);
    expect(running.exitCode).toBeUndefined();
    expect(running.command).toBe('sleep 0.5; echo first');

    const done = await waitFor('the second command', async () => {
      const c = await sb.process.getSessionCommand('async', second.cmdId);
      return c.exitCode !== undefined ? c : undefined;
    });
    expect(done.exitCode).toBe(3);
    expect((await sb.process.getSessionCommand('async', first.cmdId)).exitCode).toBe(0);
    expect(await sb.process.getSessionCommandLogs('async', first.cmdId)).toEqual({ output: 'first\n', stdout: 'first\n', stderr: '' });

    const sessions = await sb.process.listSessions();
    const listed = sessions.find((s) => s.sessionId === 'async');
    expect(listed?.commands.map((c) => c.id)).toEqual([first.cmdId, second.cmdId]);
  });

  it('streams logs over the WebSocket, split into stdout and stderr, replay then follow', async () => {
    await sb.process.createSession('stream');
    const cmd = await sb.process.executeSessionCommand('stream', {
      command: 'echo early; for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; sleep 0.15; done; printf "no newline"',
      runAsync: true,
    });
    await sleep(200); // some output exists before the stream opens: it must be replayed
    let out = '';
    let err = '';
    await sb.process.getSessionCommandLogs('stream', cmd.cmdId, (s) => (out += s), (s) => (err += s));
    expect(out).toBe('early\nout 1\nout 2\nout 3\nno newline');
    expect(err).toBe('err 1\nerr 2\nerr 3\n');
    expect((await sb.process.getSessionCommand('stream', cmd.cmdId)).exitCode).toBe(0);
  });

  it('delete session kills its processes', async () => {
    await sb.process.createSession('doomed');
    const cmd = await sb.process.executeSessionCommand('doomed', { command: 'echo $$; sleep 60', runAsync: true });
    const pid = await waitFor('the shell pid', async () => {
      const out = (await sb.process.getSessionCommandLogs('doomed', cmd.cmdId)).stdout?.trim();
      return out ? Number(out) : undefined;
    });
    expect(isAlive(pid)).toBe(true);
    await sb.process.deleteSession('doomed');
    await waitFor('the session shell to die', () => !isAlive(pid) || undefined);
    expect((await sb.process.listSessions()).map((s) => s.sessionId)).not.toContain('doomed');
  });
});
