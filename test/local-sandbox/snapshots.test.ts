// Snapshots through the real SDK: `daytona.snapshot.create` with the SDK's `Image` builds a template
// home on this machine, following the build's log; sandboxes made from it start with its files and ENV
// and keep their own writes; failed builds and unknown snapshots are refused with Daytona's messages;
// a restarted server still has its snapshots.
import { Daytona, DaytonaConflictError, DaytonaNotFoundError, DaytonaValidationError, Image } from '@daytonaio/sdk';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startLocalSandbox } from '../support/processes.ts';
import { isAlive, rejection, useLocalSandbox, waitFor } from './helpers.ts';
import type { Harness } from './helpers.ts';

const h = useLocalSandbox();

/** A control-plane call as raw HTTP: status and JSON body. */
async function api(harness: Harness, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${harness.server.apiUrl}${path}`, {
    method,
    headers: { authorization: 'Bearer k', ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** The template's folder on disk, where the test can look behind the API. */
function templateHome(root: string, snapshotId: string): string {
  return join(root, 'snapshots', snapshotId, 'home');
}

const TOOLS = Image.base('node:22')
  .runCommands('mkdir -p $HOME/tools && echo hi > $HOME/tools/hello.txt', 'echo built-by-step-3')
  .env({ FOO: 'bar', SPACED: 'a b "c"' });

describe('snapshots', () => {
  it('builds a snapshot from the SDK Image, following its log to `active`; get and list find it', async () => {
    const logs: string[] = [];
    const snap = await h.daytona.snapshot.create({ name: 'tools', image: TOOLS }, { onLogs: (line) => logs.push(line) });
    expect(snap).toMatchObject({ name: 'tools', state: 'active', errorReason: null, cpu: 1, mem: 1, disk: 3, entrypoint: ['sleep', 'infinity'] });
    expect(snap.size).toBeGreaterThan(0);
    const log = logs.join('\n');
    expect(log).toContain('Creating snapshot tools (building)');
    expect(log).toContain('Step 1/5 : FROM node:22');
    expect(log).toContain('Step 2/5 : RUN mkdir -p $HOME/tools && echo hi > $HOME/tools/hello.txt');
    expect(log).toContain('Step 3/5 : RUN echo built-by-step-3\nbuilt-by-step-3');
    expect(log).toContain('Step 4/5 : ENV FOO=bar');
    expect(log).toContain('Created snapshot tools (active)');

    expect((await h.daytona.snapshot.get('tools')).id).toBe(snap.id);
    expect((await h.daytona.snapshot.get(snap.id)).name).toBe('tools');
    const listed = await h.daytona.snapshot.list();
    expect(listed).toMatchObject({ total: 1, page: 1, totalPages: 1 });
    expect(listed.items.map((s) => s.name)).toEqual(['tools']);
    const byName = await api(h, 'GET', '/snapshots?name=TOO&limit=1');
    expect(byName.body).toMatchObject({ total: 1, totalPages: 1, items: [{ id: snap.id, sourceSandboxId: null, general: false }] });
    expect((await api(h, 'GET', '/snapshots?name=nothing-like-it')).body).toMatchObject({ total: 0, items: [] });
    expect(readFileSync(join(templateHome(h.server.root, snap.id), 'tools', 'hello.txt'), 'utf8')).toBe('hi\n');
  });

  it('a sandbox from it has its files and ENV; what one sandbox writes stays its own', async () => {
    const first = await h.daytona.create({ snapshot: 'tools' });
    expect(first.snapshot).toBe('tools');
    expect((await first.process.executeCommand('cat $HOME/tools/hello.txt')).result).toBe('hi\n');
    expect((await first.process.executeCommand('printf "%s|%s" "$FOO" "$SPACED"')).result).toBe('bar|a b "c"');
    // The create's env wins over the snapshot's.
    const own = await h.daytona.create({ snapshot: 'tools', envVars: { FOO: 'mine' } });
    expect((await own.process.executeCommand('echo $FOO')).result).toBe('mine\n');

    // A small file rewritten in place, and a new one: neither reaches the template or a second sandbox.
    await first.process.executeCommand('echo changed > $HOME/tools/hello.txt && echo new > $HOME/mine.txt');
    expect((await first.process.executeCommand('cat $HOME/tools/hello.txt $HOME/mine.txt')).result).toBe('changed\nnew\n');
    const snap = await h.daytona.snapshot.get('tools');
    expect(readFileSync(join(templateHome(h.server.root, snap.id), 'tools', 'hello.txt'), 'utf8')).toBe('hi\n');
    expect(existsSync(join(templateHome(h.server.root, snap.id), 'mine.txt'))).toBe(false);
    const second = await h.daytona.create({ snapshot: snap.id });
    expect((await second.process.executeCommand('cat $HOME/tools/hello.txt; ls $HOME/mine.txt')).result).toMatch(/^hi\n.*No such file/s);
    expect(snap.lastUsedAt).not.toBeNull();
  });

  it('hard-links the template\'s large files into a sandbox and copies its small ones', async () => {
    const image = Image.base('node:22')
      .runCommands('mkdir -p $HOME/data && head -c 300000 /dev/urandom > $HOME/data/big.bin && echo small > $HOME/data/small.txt', 'ln -s data/big.bin $HOME/big-link')
      .workdir('app');
    const snap = await h.daytona.snapshot.create({ name: 'data', image });
    const sb = await h.daytona.create({ snapshot: 'data' });
    const home = templateHome(h.server.root, snap.id);
    const inodes = (await sb.process.executeCommand('stat -c %i $HOME/data/big.bin $HOME/data/small.txt')).result.trim().split('\n').map(Number);
    expect(inodes[0]).toBe(statSync(join(home, 'data', 'big.bin')).ino);
    expect(inodes[1]).not.toBe(statSync(join(home, 'data', 'small.txt')).ino);
    expect((await sb.process.executeCommand('readlink $HOME/big-link')).result).toBe('data/big.bin\n');
    // The Dockerfile's WORKDIR (relative: under the build's work dir) is the sandbox's work dir.
    expect(await sb.getWorkDir()).toBe(join((await sb.getUserHomeDir())!, 'workspace', 'app'));
  });

  it('a failing RUN step fails the build: create throws with the step and exit code, the snapshot is build_failed', async () => {
    const logs: string[] = [];
    const image = Image.base('node:22').runCommands('echo before-the-failure', 'exit 3', 'touch $HOME/never');
    const err = await rejection(h.daytona.snapshot.create({ name: 'broken', image }, { onLogs: (line) => logs.push(line) }));
    expect(err.message).toBe('Failed to create snapshot. Name: broken Reason: The command at Step 3/4 : RUN exit 3 returned a non-zero code: 3');
    expect(logs.join('\n')).toContain('Step 2/4 : RUN echo before-the-failure\nbefore-the-failure');
    const snap = await h.daytona.snapshot.get('broken');
    expect(snap).toMatchObject({ state: 'build_failed', errorReason: 'The command at Step 3/4 : RUN exit 3 returned a non-zero code: 3' });
    expect(existsSync(join(templateHome(h.server.root, snap.id), 'never'))).toBe(false);

    // The API's refusal of a sandbox from a snapshot that is not active (sandbox.service.ts 509-511).
    const refused = await rejection(h.daytona.create({ snapshot: 'broken' }));
    expect(refused).toBeInstanceOf(DaytonaValidationError);
    expect(refused.message).toBe('Snapshot broken is build_failed');
  });

  it('reads a hand-written Dockerfile: both ENV forms, quotes, the JSON exec form, $HOME per sandbox', async () => {
    const dockerfile = [
      'FROM ubuntu:24.04',
      '# a comment',
      'ENV GREETING "hello there"',
      "ENV ONE=1 TWO='two words' \\",
      '    TOOLS=$HOME/tools',
      'RUN ["bash", "-c", "echo exec-form:$GREETING:$TWO > $HOME/exec.txt"]',
      'ENTRYPOINT ["/usr/bin/env", "--", "run"]',
      'CMD ["x"]',
    ].join('\n');
    const created = await api(h, 'POST', '/snapshots', { name: 'handmade', buildInfo: { dockerfileContent: dockerfile } });
    expect(created.body).toMatchObject({ state: 'pending', entrypoint: ['/usr/bin/env', '--', 'run'], imageName: '' });
    await waitFor('the build', async () => ((await api(h, 'GET', '/snapshots/handmade')).body.state === 'active' ? true : undefined));
    const sb = await h.daytona.create({ snapshot: 'handmade' });
    const home = (await sb.getUserHomeDir())!;
    expect((await sb.process.executeCommand('printf "%s|%s|%s|%s" "$GREETING" "$ONE" "$TWO" "$TOOLS"; echo; cat $HOME/exec.txt')).result).toBe(
      `hello there|1|two words|${home}/tools\nexec-form:hello there:two words\n`,
    );
  });

  it('fails a build on an instruction it cannot run before running any step', async () => {
    const created = await api(h, 'POST', '/snapshots', { name: 'copies', buildInfo: { dockerfileContent: 'FROM node:22\nRUN touch $HOME/ran\nCOPY . /app\n' } });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ name: 'copies', state: 'pending' });
    const id = String(created.body.id);
    const failed = await waitFor('the build to fail', async () => {
      const s = (await api(h, 'GET', `/snapshots/${id}`)).body;
      return s.state === 'build_failed' ? s : undefined;
    });
    expect(failed.errorReason).toMatch(/^Step 3\/3 : COPY \. \/app: COPY is not supported by the local sandbox server/);
    expect(existsSync(join(templateHome(h.server.root, id), 'ran'))).toBe(false);
    const logUrl = (await api(h, 'GET', `/snapshots/${id}/build-logs-url`)).body.url as string;
    expect(await (await fetch(logUrl)).text()).toContain('Step 3/3 : COPY . /app');
  });

  it('refuses a sandbox from an unknown snapshot with the API\'s 400', async () => {
    const err = await rejection(h.daytona.create({ snapshot: 'no-such-snapshot' }));
    expect(err).toBeInstanceOf(DaytonaValidationError);
    expect(err.message).toBe('Snapshot no-such-snapshot not found. Did you add it through the Daytona Dashboard?');
    expect((await rejection(h.daytona.snapshot.get('no-such-snapshot'))).message).toBe('Snapshot with name no-such-snapshot not found');
  });

  it('refuses a taken name (409), and a missing or malformed one, or no image at all (400)', async () => {
    const dup = await rejection(h.daytona.snapshot.create({ name: 'tools', image: 'node:22.1' }));
    expect(dup).toBeInstanceOf(DaytonaConflictError);
    expect(dup.message).toBe('Snapshot with name "tools" already exists for this organization');
    expect(await api(h, 'POST', '/snapshots', { imageName: 'node:22.1' })).toMatchObject({ status: 400, body: { message: 'name must be a string' } });
    expect(await api(h, 'POST', '/snapshots', { name: 'a b', imageName: 'node:22.1' })).toMatchObject({
      status: 400,
      body: { message: 'Invalid snapshot name format. May contain letters, digits, dots, colons, and dashes' },
    });
    expect(await api(h, 'POST', '/snapshots', { name: 'nothing' })).toMatchObject({
      status: 400,
      body: { message: 'Must specify an image name when not using a build info entry' },
    });
    expect(await api(h, 'POST', '/snapshots', { name: 'latest', imageName: 'node:latest' })).toMatchObject({
      status: 400,
      body: { message: 'Images with tag ":latest" are not allowed' },
    });
  });

  it('an image-name snapshot is active with an empty template; deleting a snapshot leaves its sandboxes whole', async () => {
    const plain = await h.daytona.snapshot.create({ name: 'plain', image: 'node:22.1' });
    expect(plain).toMatchObject({ state: 'active', imageName: 'node:22.1', entrypoint: null });
    const fromPlain = await h.daytona.create({ snapshot: 'plain' });
    expect((await fromPlain.process.executeCommand('ls -A $HOME')).result.split('\n').filter(Boolean).sort()).toEqual(['.npm-global', 'workspace']);

    const data = await h.daytona.snapshot.get('data');
    const sb = await h.daytona.create({ snapshot: 'data' });
    await h.daytona.snapshot.delete('data');
    expect(await rejection(h.daytona.snapshot.get('data'))).toBeInstanceOf(DaytonaNotFoundError);
    expect(existsSync(join(h.server.root, 'snapshots', data.id))).toBe(false);
    expect((await sb.process.executeCommand('wc -c < $HOME/data/big.bin; cat $HOME/data/small.txt')).result).toBe('300000\nsmall\n');
    const stats = await h.admin<{ snapshots: number }>('/stats');
    expect(stats.snapshots).toBe((await h.daytona.snapshot.list()).total);
  });
});

describe('snapshots across a restart', () => {
  const root = mkdtempSync(join(tmpdir(), 'local-sandbox-snapshots-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('keeps an active snapshot usable, and fails a build the old server did not finish', { timeout: 120_000 }, async () => {
    const first = await startLocalSandbox(['--root', root, '--profile', 'lenient']);
    let daytona = new Daytona({ apiKey: 'any', apiUrl: first.apiUrl });
    await daytona.snapshot.create({ name: 'kept', image: TOOLS });
    // A build cut short: its step writes its pid where the test finds it, then sleeps.
    const cut = await fetch(`${first.apiUrl}/snapshots`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'cut', buildInfo: { dockerfileContent: 'FROM node:22\nRUN echo $$ > $HOME/pid && exec sleep 600\n' } }),
    });
    const cutId = String(((await cut.json()) as { id: string }).id);
    const pidFile = join(templateHome(root, cutId), 'pid');
    const sleeper = await waitFor('the build step to start', () => (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() ? Number(readFileSync(pidFile, 'utf8')) : undefined));
    expect(isAlive(sleeper)).toBe(true);
    await daytona[Symbol.asyncDispose]();
    // A crash: the server dies at once; the next one sweeps the build's process.
    process.kill(first.child.pid!, 'SIGKILL');
    await new Promise((r) => first.child.once('exit', r));

    const second = await startLocalSandbox(['--root', root, '--profile', 'lenient']);
    try {
      daytona = new Daytona({ apiKey: 'any', apiUrl: second.apiUrl });
      expect((await daytona.snapshot.get('kept')).state).toBe('active');
      const sb = await daytona.create({ snapshot: 'kept' });
      expect((await sb.process.executeCommand('cat $HOME/tools/hello.txt; echo $FOO')).result).toBe('hi\nbar\n');
      expect(await daytona.snapshot.get('cut')).toMatchObject({
        state: 'build_failed',
        errorReason: 'Build interrupted: the local sandbox server restarted during the build',
      });
      await expect.poll(() => isAlive(sleeper), { timeout: 10_000 }).toBe(false);
      await daytona[Symbol.asyncDispose]();
    } finally {
      await second.stop();
    }
  });
});
