// The scripted fake of Anthropic's Messages API (tools/fake-anthropic), checked on its own and then against
// the real Claude Code CLI (npm @anthropic-ai/claude-code, pinned): a headless `claude -p` writes hello.txt
// through the fake's scripted Write tool call and finishes with a `result` event.
//
// The CLI (~400 MB with its native binary) is installed once into os.tmpdir()/multishot-claude-cache and
// reused while `claude --version` reports the pinned version there.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DONE_TEXT, DEFAULT_HELLO_CONTENT, startFakeAnthropic } from '../../tools/fake-anthropic/server.ts';
import type { FakeAnthropic, MessagesRequestBody, RecordedRequest } from '../../tools/fake-anthropic/server.ts';

const CLAUDE_VERSION = '2.1.332';
const CACHE_DIR = path.join(os.tmpdir(), 'multishot-claude-cache');
const CLAUDE_BIN = path.join(CACHE_DIR, 'node_modules', '.bin', 'claude');

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** `claude --version` of an install, or undefined if it does not run. */
async function claudeVersion(bin: string): Promise<string | undefined> {
  if (!existsSync(bin)) return undefined;
  const r = await run(bin, ['--version'], { timeoutMs: 60_000 }).catch(() => undefined);
  return r?.code === 0 ? r.stdout.trim() : undefined;
}

/** Installs the pinned CLI into CACHE_DIR unless a working install of that version is already there. */
async function ensureClaude(): Promise<void> {
  if ((await claudeVersion(CLAUDE_BIN))?.startsWith(CLAUDE_VERSION)) return;
  const staging = `${CACHE_DIR}.staging-${process.pid}-${Date.now()}`;
  await mkdir(staging, { recursive: true });
  try {
    // The native binary reaches bin/claude.exe only through the package's postinstall (`node install.cjs`
    // copies it from the platform optionalDependency over a 500-byte placeholder). npm 11 wants install
    // scripts listed in the project's allowScripts (`--allow-scripts` is refused for project installs).
    await writeFile(
      path.join(staging, 'package.json'),
      JSON.stringify({ private: true, allowScripts: { '@anthropic-ai/claude-code': true } }),
    );
    const env = { ...process.env };
    delete env.npm_config_ignore_scripts;
    delete env.npm_config_allow_scripts;
    const npm = await run(
      'npm',
      ['install', '--prefix', staging, '--no-audit', '--no-fund', `@anthropic-ai/claude-code@${CLAUDE_VERSION}`],
      { env, timeoutMs: 540_000 },
    );
    if (npm.code !== 0) throw new Error(`npm install failed (${npm.code}):\n${npm.stdout}\n${npm.stderr}`);
    const stagedBin = path.join(staging, 'node_modules', '.bin', 'claude');
    if (!(await claudeVersion(stagedBin))) {
      throw new Error(`claude --version fails after npm install (postinstall skipped?):\n${npm.stdout}\n${npm.stderr}`);
    }
    await rm(CACHE_DIR, { recursive: true, force: true });
    // Another run may have filled the cache meanwhile: then its install is as good as ours.
    await rename(staging, CACHE_DIR).catch(async (err: unknown) => {
      if (!(await claudeVersion(CLAUDE_BIN))?.startsWith(CLAUDE_VERSION)) throw err;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  const version = await claudeVersion(CLAUDE_BIN);
  if (!version?.startsWith(CLAUDE_VERSION)) throw new Error(`cached claude reports ${String(version)}`);
}

function messagesCalls(fake: FakeAnthropic): RecordedRequest[] {
  return fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages');
}

function parseSse(text: string): Array<{ event: string; data: Record<string, unknown> }> {
  return text
    .split('\n\n')
    .filter((chunk) => chunk.trim() !== '')
    .map((chunk) => {
      const event = /^event: (.*)$/m.exec(chunk)?.[1] ?? '';
      const data = JSON.parse(/^data: (.*)$/m.exec(chunk)?.[1] ?? 'null') as Record<string, unknown>;
      return { event, data };
    });
}

describe('fake Anthropic Messages API', () => {
  let fake: FakeAnthropic;
  beforeAll(async () => {
    fake = await startFakeAnthropic({
      script: (body) => ({
        blocks: [
          { type: 'text', text: `echo ${String(body.model)}` },
          { type: 'tool_use', name: 'Bash', input: { command: 'echo "a long enough command"' } },
        ],
      }),
    });
  });
  afterAll(async () => {
    await fake?.close();
  });

  const post = (p: string, body: unknown, headers: Record<string, string> = { 'x-api-key': 'k' }): Promise<Response> =>
    fetch(`${fake.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('rejects a request without credentials with the Anthropic error shape', async () => {
    const res = await post('/v1/messages', { model: 'm', messages: [] }, {});
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error', message: expect.any(String) } });
  });

  it('streams a scripted answer as Messages API SSE events', async () => {
    const res = await post('/v1/messages?beta=true', { model: 'claude-x', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer t' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = parseSse(await res.text());
    for (const e of events) expect(e.data.type).toBe(e.event);
    const types = events.map((e) => e.event).filter((t) => t !== 'ping' && t !== 'content_block_delta');
    expect(types).toEqual(['message_start', 'content_block_start', 'content_block_stop', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop']);
    expect(events[0]!.data.message).toMatchObject({ type: 'message', role: 'assistant', model: 'claude-x', content: [] });
    const text = events.filter((e) => (e.data.delta as { type?: string })?.type === 'text_delta').map((e) => (e.data.delta as { text: string }).text);
    expect(text.join('')).toBe('echo claude-x');
    const json = events.filter((e) => (e.data.delta as { type?: string })?.type === 'input_json_delta');
    expect(json.length).toBeGreaterThan(1);
    expect(JSON.parse(json.map((e) => (e.data.delta as { partial_json: string }).partial_json).join(''))).toEqual({ command: 'echo "a long enough command"' });
    expect(events.find((e) => e.event === 'message_delta')!.data).toMatchObject({ delta: { stop_reason: 'tool_use' }, usage: { output_tokens: expect.any(Number) } });
    const recorded = fake.requests.at(-1)!;
    expect(recorded).toMatchObject({ method: 'POST', path: '/v1/messages', query: { beta: 'true' }, headers: { authorization: 'Bearer t' } });
  });

  it('answers a non-streaming request with the plain message, and counts tokens', async () => {
    const res = await post('/v1/messages', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(await res.json()).toMatchObject({
      type: 'message',
      role: 'assistant',
      model: 'm',
      stop_reason: 'tool_use',
      content: [{ type: 'text', text: 'echo m' }, { type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'Bash' }],
    });
    const count = await post('/v1/messages/count_tokens?beta=true', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(await count.json()).toEqual({ input_tokens: expect.any(Number) });
    expect((await fetch(`${fake.url}/`, { method: 'HEAD' })).status).toBe(404);
  });
});

describe('the real Claude Code CLI against the fake', () => {
  let fake: FakeAnthropic;
  let scratch: string;
  beforeAll(async () => {
    const started = Date.now();
    await ensureClaude();
    console.info(`[fake-anthropic.test] claude ${CLAUDE_VERSION} ready in ${Date.now() - started} ms (${CACHE_DIR})`);
    fake = await startFakeAnthropic();
    scratch = await mkdtemp(path.join(os.tmpdir(), 'fake-anthropic-test-'));
  }, 600_000);
  afterAll(async () => {
    await fake?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('runs `claude -p` to a successful result that wrote hello.txt through a scripted tool call', async () => {
    const cwd = path.join(scratch, 'work');
    const home = path.join(scratch, 'home');
    await mkdir(cwd);
    await mkdir(home);
    // A clean environment: nothing from the outer one (no real ANTHROPIC_* credentials or proxies).
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      TMPDIR: os.tmpdir(),
      ANTHROPIC_BASE_URL: fake.url,
      ANTHROPIC_API_KEY: 'test-key',
      IS_SANDBOX: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      NO_PROXY: '127.0.0.1',
    };
    const args = ['-p', 'write hello.txt', '--output-format', 'stream-json', '--verbose', '--dangerously-skip-permissions', '--max-turns', '3'];
    const r = await run(CLAUDE_BIN, args, { cwd, env, timeoutMs: 150_000 });
    console.info(`[fake-anthropic.test] claude -p exited ${r.code} in ${r.ms} ms`);
    const context = `exit ${r.code} ${r.signal ?? ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

    expect(r.code, context).toBe(0);
    expect(await readFile(path.join(cwd, 'hello.txt'), 'utf8')).toBe(DEFAULT_HELLO_CONTENT);

    const events = r.stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events[0], context).toMatchObject({ type: 'system', subtype: 'init' });
    const result = events.at(-1);
    expect(result, context).toMatchObject({ type: 'result', subtype: 'success', is_error: false, result: DEFAULT_DONE_TEXT });
    expect(result!.num_turns as number).toBeGreaterThanOrEqual(2);
    expect(result!.total_cost_usd as number).toBeGreaterThan(0);

    const calls = messagesCalls(fake);
    expect(calls.length, JSON.stringify(fake.requests.map((q) => `${q.method} ${q.url}`))).toBeGreaterThanOrEqual(2);
    for (const call of calls) {
      expect(call.headers['x-api-key']).toBe('test-key');
      expect(call.headers['anthropic-version']).toBe('2023-06-01');
      expect((call.body as MessagesRequestBody).stream).toBe(true);
    }
    const second = calls[1]!.body as MessagesRequestBody;
    const toolResults = (second.messages ?? []).flatMap((m) =>
      m.role === 'user' && Array.isArray(m.content) ? m.content.filter((b) => b.type === 'tool_result') : [],
    );
    expect(toolResults).toHaveLength(1);
    expect(JSON.stringify(toolResults[0])).toContain('hello.txt');
  });
});
