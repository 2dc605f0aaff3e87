// Previews: sandboxes that all listen on port 3000 stay apart, each reachable through its own preview
// URL; tokens, signed URLs and WebSocket upgrades go through the proxy.
import type { Sandbox } from '@daytonaio/sdk';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, useLocalSandbox, waitFor } from './helpers.ts';

const h = useLocalSandbox();
const server = (host: string): string =>
  `node -e "require('http').createServer((q,s)=>s.end('hello from '+process.env.X)).listen(3000,'${host}')"`;
let sandboxes: Sandbox[];
let a: Sandbox;
let b: Sandbox;

async function startDevServer(sb: Sandbox, command: string): Promise<void> {
  await sb.process.createSession('dev');
  await sb.process.executeSessionCommand('dev', { command, runAsync: true });
}

async function previewText(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(url, init);
  return { status: res.status, text: await res.text() };
}

beforeAll(async () => {
  sandboxes = await Promise.all(['a', 'b', 'c', 'd'].map((x) => h.daytona.create({ envVars: { X: x } })));
  [a, b] = sandboxes as [Sandbox, Sandbox];
  // half bind every interface, half loopback only: both must be remapped
  await Promise.all(sandboxes.map((sb, i) => startDevServer(sb, server(i % 2 ? '127.0.0.1' : '0.0.0.0'))));
});

describe('preview', () => {
  it('reaches each of four sandboxes on its own port 3000', async () => {
    for (const [i, sb] of sandboxes.entries()) {
      const name = 'abcd'[i]!;
      const link = await sb.getPreviewLink(3000);
      const res = await waitFor(`sandbox ${name}'s server`, async () => {
        const r = await previewText(link.url, { headers: { 'X-Daytona-Preview-Token': link.token } });
        return r.status === 200 ? r : undefined;
      });
      expect(res.text).toBe(`hello from ${name}`);
    }
  });

  it('gives a program in the sandbox its own port back: connect and getsockname', async () => {
    await waitFor('a to listen', async () => (await previewText((await a.getPreviewLink(3000)).url, { headers: { 'X-Daytona-Preview-Token': (await a.getPreviewLink(3000)).token } })).status === 200 || undefined);
    const local = await a.process.executeCommand(`node -e "fetch('http://localhost:3000/').then(r=>r.text()).then(t=>console.log(t))"`);
    expect(local.result.trim()).toBe('hello from a');
    const own = await b.process.executeCommand(
      `node -e "const s=require('http').createServer().listen(4000,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"`,
    );
    expect(own.result.trim()).toBe('4000');
  });

  it('reaches a server that listens on IPv6 loopback only (as `localhost` dev servers often do)', async () => {
    await b.process.createSession('v6');
    await b.process.executeSessionCommand('v6', {
      command: `node -e "require('http').createServer((q,s)=>s.end('v6 '+q.url)).listen(5173,'::1')"`,
      runAsync: true,
    });
    const link = await b.getPreviewLink(5173);
    const res = await waitFor('the IPv6 server', async () => {
      const r = await previewText(`${link.url}/src/main.ts?x=1`, { headers: { 'X-Daytona-Preview-Token': link.token } });
      return r.status === 200 ? r : undefined;
    });
    expect(res.text).toBe('v6 /src/main.ts?x=1');
  });

  it('lets a sandbox reach services on the host loopback', async () => {
    const host = http.createServer((_q, s) => s.end('host service'));
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    try {
      const port = (host.address() as AddressInfo).port;
      const r = await a.process.executeCommand(`node -e "fetch('http://127.0.0.1:${port}/').then(r=>r.text()).then(t=>console.log(t))"`);
      expect(r.result.trim()).toBe('host service');
    } finally {
      host.close();
    }
  });

  it('requires the token: header, query (then a cookie), and refuses none', async () => {
    const link = await a.getPreviewLink(3000);
    expect((await previewText(link.url)).status).toBe(401);
    expect((await previewText(link.url, { headers: { 'X-Daytona-Preview-Token': 'wrong' } })).status).toBe(401);
    const viaQuery = await fetch(`${link.url}/?DAYTONA_SANDBOX_AUTH_KEY=${link.token}`);
    expect(viaQuery.status).toBe(200);
    const cookie = viaQuery.headers.get('set-cookie')!.split(';')[0]!;
    expect((await previewText(`${link.url}/again`, { headers: { cookie } })).text).toBe('hello from a');
  });

  it('serves signed URLs until they expire', async () => {
    const signed = await b.getSignedPreviewUrl(3000, 1);
    expect(await previewText(signed.url)).toEqual({ status: 200, text: 'hello from b' });
    await sleep(1100);
    const expired = await previewText(signed.url);
    expect(expired.status).toBe(410);
    expect(JSON.parse(expired.text)).toMatchObject({ statusCode: 410, message: expect.stringMatching(/expired/) });
    const forged = signed.token.slice(0, -2) + (signed.token.endsWith('AA') ? 'BB' : 'AA');
    expect((await previewText(`${h.server.url}/preview/signed/${forged}`)).status).toBe(401);
  });

  it('forwards WebSocket upgrades', async () => {
    const nodeModules = path.resolve('node_modules');
    await a.process.createSession('ws');
    await a.process.executeSessionCommand('ws', {
      command: `NODE_PATH=${nodeModules} node -e "const {WebSocketServer}=require('ws');new WebSocketServer({port:3001}).on('connection',w=>w.on('message',m=>w.send('echo:'+m)))"`,
      runAsync: true,
    });
    const link = await a.getPreviewLink(3001);
    const reply = await waitFor('the echo server', async () => {
      const ws = new WebSocket(link.url.replace(/^http/, 'ws') + '/socket', { headers: { 'X-Daytona-Preview-Token': link.token } });
      return new Promise<string | undefined>((resolve) => {
        ws.on('open', () => ws.send('ping'));
        ws.on('message', (m) => (resolve(String(m)), ws.close()));
        ws.on('error', () => resolve(undefined));
        ws.on('unexpected-response', () => resolve(undefined));
      });
    });
    expect(reply).toBe('echo:ping');
  });
});

afterAll(async () => {
  await Promise.all((sandboxes ?? []).map((sb) => sb.delete()));
});
