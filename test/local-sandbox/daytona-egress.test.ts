// The 'daytona' profile's egress: a sandbox reaches only its allowlist (stand-ins for Daytona's
// essential services) and its own ports; curl, node and git are all refused quickly by the port shim.
// Also a create's networkBlockAll (Tier 3+), and a running server switched by POST /admin/behaviour.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLocalSandbox } from './helpers.ts';

/** A host service a sandbox must not reach (think: the Worker on 127.0.0.1:8787). */
let forbidden: http.Server;
/** The fake Anthropic / test git server on the allowlist. */
let allowed: http.Server;
const portOf = (s: http.Server): number => (s.address() as AddressInfo).port;

/** Answers `body`, and serves `gitDir` (a bare repository) under /repo.git/ over git's dumb HTTP. */
async function listen(body: string, gitDir?: string): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (gitDir && url.pathname.startsWith('/repo.git/')) {
      const file = path.join(gitDir, url.pathname.slice('/repo.git/'.length));
      if (!file.startsWith(gitDir) || !existsSync(file)) return void res.writeHead(404).end();
      return void res.end(readFileSync(file));
    }
    res.setHeader('content-type', 'text/plain');
    res.end(body);
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return s;
}

// Registered first, so the server is up when the hook below sets its allowlist.
const h = useLocalSandbox({ profile: 'daytona', createPendingMs: 0, stateChangeMs: 0, destroyDelayMs: 0 });

// Two servers on ports made after the server started: the allowlist is set at runtime.
const ports = { allowed: 0, forbidden: 0 };
beforeAll(async () => {
  // A test git server with one commit, for git to clone through the allowlist.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'egress-git-'));
  const git = (args: string[], cwd = tmp): void => void execFileSync('git', args, { cwd, stdio: 'ignore' });
  git(['init', '-q', '--bare', 'repo.git']);
  git(['init', '-q', 'work']);
  writeFileSync(path.join(tmp, 'work', 'hello.txt'), 'hello from the allowed git server\n');
  git(['add', '.'], path.join(tmp, 'work'));
  git(['-c', 'user.email=t@t', '-c', 'user.name=t', 'commit', '-q', '-m', 'one'], path.join(tmp, 'work'));
  git(['push', '-q', path.join(tmp, 'repo.git'), 'HEAD:refs/heads/main'], path.join(tmp, 'work'));
  git(['update-server-info'], path.join(tmp, 'repo.git'));
  allowed = await listen('allowed-ok', path.join(tmp, 'repo.git'));
  forbidden = await listen('forbidden-reached');
  ports.allowed = portOf(allowed);
  ports.forbidden = portOf(forbidden);
  await h.admin('/behaviour', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ egressAllow: [`127.0.0.1:${ports.allowed}`] }),
  });
});
afterAll(async () => {
  allowed?.close();
  forbidden?.close();
});

describe('restricted egress (Tiers 1/2)', () => {
  it('refuses curl, node and git to a port off the allowlist, at once, and lets them reach the allowlist', async () => {
    const sb = await h.daytona.create();
    const run = async (command: string): Promise<{ exitCode: number; result: string; ms: number }> => {
      const t0 = Date.now();
      const r = await sb.process.executeCommand(command, undefined, undefined, 20);
      return { exitCode: r.exitCode, result: r.result, ms: Date.now() - t0 };
    };

    // curl
    const curlNo = await run(`curl -sS --max-time 10 http://127.0.0.1:${ports.forbidden}/`);
    expect(curlNo.exitCode).toBe(7); // CURLE_COULDNT_CONNECT
    expect(curlNo.result).toMatch(/Connection refused|Couldn't connect/);
    expect(curlNo.result).not.toContain('forbidden-reached');
    expect(curlNo.ms).toBeLessThan(5000);
    const curlYes = await run(`curl -sS --max-time 10 http://127.0.0.1:${ports.allowed}/`);
    expect(curlYes).toMatchObject({ exitCode: 0, result: 'allowed-ok' });
    // localhost resolves to both loopbacks: both refused
    const curlLocalhost = await run(`curl -sS --max-time 10 http://localhost:${ports.forbidden}/`);
    expect(curlLocalhost.exitCode).toBe(7);

    // node (libuv's non-blocking connect)
    const nodeScript = (port: number): string =>
      `node -e "fetch('http://127.0.0.1:${port}/').then(r=>r.text()).then(t=>console.log('BODY',t),e=>console.log('ERR',e.cause?.code??e.message))"`;
    const nodeNo = await run(nodeScript(ports.forbidden));
    expect(nodeNo.result.trim()).toBe('ERR ECONNREFUSED');
    expect(nodeNo.ms).toBeLessThan(5000);
    const nodeYes = await run(nodeScript(ports.allowed));
    expect(nodeYes.result.trim()).toBe('BODY allowed-ok');

    // git over http (its curl transport)
    const gitNo = await run(`GIT_TERMINAL_PROMPT=0 git ls-remote http://127.0.0.1:${ports.forbidden}/repo.git 2>&1`);
    expect(gitNo.exitCode).not.toBe(0);
    expect(gitNo.result).toMatch(/Connection refused|Failed to connect|Couldn't connect/);
    expect(gitNo.ms).toBeLessThan(5000);
    const gitYes = await run(`GIT_TERMINAL_PROMPT=0 git clone -q -b main http://127.0.0.1:${ports.allowed}/repo.git cloned 2>&1 && cat cloned/hello.txt`);
    expect(gitYes).toMatchObject({ exitCode: 0, result: 'hello from the allowed git server\n' });
    await sb.delete();
  });

  it('keeps the sandbox own ports reachable from inside it, mapped and ephemeral', async () => {
    const sb = await h.daytona.create();
    await sb.process.createSession('srv');
    await sb.process.executeSessionCommand('srv', {
      command: `node -e "require('http').createServer((q,s)=>s.end('own-'+q.url)).listen(3000, '127.0.0.1')"`,
      runAsync: true,
    });
    const own = await waitForOutput(sb, 'curl -s --max-time 5 http://127.0.0.1:3000/x', 'own-/x');
    expect(own).toBe('own-/x');
    // A server on port 0 and a client in one program: the real port it got is its own.
    const ephemeral = await sb.process.executeCommand(
      `node -e "const s=require('http').createServer((q,r)=>r.end('eph')).listen(0,'127.0.0.1',()=>fetch('http://127.0.0.1:'+s.address().port+'/').then(r=>r.text()).then(t=>{console.log(t);s.close()},e=>{console.log('ERR',e.cause?.code);s.close()}))"`,
      undefined,
      undefined,
      20,
    );
    expect(ephemeral.result.trim()).toBe('eph');
    // And the local sandbox server itself (the stand-in for app.daytona.io) stays reachable.
    const api = await sb.process.executeCommand(`curl -s -o /dev/null -w '%{http_code}' ${h.server.url}/admin/behaviour`);
    expect(api.result).toBe('200');
    await sb.delete();
  });

  it('switches at runtime: POST /admin/behaviour opens egress for processes started afterwards', async () => {
    const sb = await h.daytona.create();
    const before = await sb.process.executeCommand(`curl -sS --max-time 10 http://127.0.0.1:${ports.forbidden}/`);
    expect(before.exitCode).toBe(7);
    const open = await h.admin<{ egress: string }>('/behaviour', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ egress: 'open' }),
    });
    expect(open.egress).toBe('open');
    try {
      const after = await sb.process.executeCommand(`curl -sS --max-time 10 http://127.0.0.1:${ports.forbidden}/`);
      expect(after).toMatchObject({ exitCode: 0, result: 'forbidden-reached' });
    } finally {
      await h.admin('/behaviour', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ egress: 'restricted' }),
      });
    }
    expect((await h.admin<{ egress: string }>('/behaviour')).egress).toBe('restricted');
    await sb.delete();
  });

  it("a create's networkBlockAll blocks even the allowlist (the SYN is dropped: ETIMEDOUT, at once)", async () => {
    const sb = await h.daytona.create({ networkBlockAll: true });
    const t0 = Date.now();
    const r = await sb.process.executeCommand(
      `node -e "fetch('http://127.0.0.1:${ports.allowed}/').then(r=>r.text()).then(t=>console.log('BODY',t),e=>console.log('ERR',e.cause?.code??e.message))"`,
    );
    expect(r.result.trim()).toBe('ERR ETIMEDOUT');
    expect(Date.now() - t0).toBeLessThan(5000);
    await sb.delete();
  });

  it('rejects a networkAllowList that is not IPv4 CIDRs, with the API message', async () => {
    await expect(h.daytona.create({ networkAllowList: '127.0.0.1' })).rejects.toThrow(
      'Invalid network format: "127.0.0.1". Missing CIDR prefix length (e.g., /24)',
    );
  });
});

async function waitForOutput(
  sb: { process: { executeCommand(c: string): Promise<{ result: string }> } },
  command: string,
  want: string,
): Promise<string> {
  const until = Date.now() + 10_000;
  for (;;) {
    const r = await sb.process.executeCommand(command);
    if (r.result === want || Date.now() > until) return r.result;
    await new Promise((res) => setTimeout(res, 100));
  }
}
