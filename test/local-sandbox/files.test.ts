// Files through the real SDK: upload, download, list, folders, delete, a 200 MB round trip streamed
// both ways, and paths that try to leave the sandbox.
import { DaytonaFileAccessDeniedError, DaytonaFileNotFoundError } from '@daytonaio/sdk';
import type { Sandbox } from '@daytonaio/sdk';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLocalSandbox } from './helpers.ts';

const h = useLocalSandbox();
let sb: Sandbox;
let tmp: string;

beforeAll(async () => {
  sb = await h.daytona.create({});
  tmp = await mkdtemp(path.join(os.tmpdir(), 'local-sandbox-files-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('files', () => {
  it('uploads, lists, downloads, creates folders and deletes', async () => {
    await sb.fs.uploadFile(Buffer.from('alpha'), 'docs/a.txt');
    await sb.fs.uploadFiles([
      { source: Buffer.from('beta'), destination: 'docs/b.txt' },
      { source: Buffer.from('gamma'), destination: `${await sb.getUserHomeDir()}/abs.txt` },
    ]);
    expect((await sb.fs.downloadFile('docs/b.txt')).toString()).toBe('beta');
    expect((await sb.fs.downloadFile('~/abs.txt')).toString()).toBe('gamma');

    await sb.fs.createFolder('docs/sub', '755');
    const listed = await sb.fs.listFiles('docs');
    expect(listed.map((f) => [f.name, f.isDir, f.size]).sort()).toEqual([
      ['a.txt', false, 5],
      ['b.txt', false, 4],
      ['sub', true, expect.any(Number)],
    ]);
    expect(listed.find((f) => f.name === 'a.txt')).toMatchObject({ mode: '-rw-r--r--', modTime: expect.any(String) });

    await sb.fs.deleteFile('docs/a.txt');
    await expect(sb.fs.downloadFile('docs/a.txt')).rejects.toMatchObject({ statusCode: 404 });
    await expect(sb.fs.deleteFile('docs/a.txt')).rejects.toBeInstanceOf(DaytonaFileNotFoundError);
    await expect(sb.fs.deleteFile('docs')).rejects.toMatchObject({ statusCode: 400 });
    await sb.fs.deleteFile('docs', true);
    expect((await sb.fs.listFiles('.')).map((f) => f.name)).not.toContain('docs');
  });

  it('moves 200 MB up and back byte for byte, streamed from and to disk', async () => {
    const src = path.join(tmp, 'big.bin');
    const back = path.join(tmp, 'big.back.bin');
    const out = createWriteStream(src);
    for (let i = 0; i < 200; i++) if (!out.write(randomBytes(1024 * 1024))) await once(out, 'drain');
    out.end();
    await once(out, 'finish');

    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      await sb.fs.uploadFile(src, 'big/big.bin');
      await sb.fs.downloadFile('big/big.bin', back);
    } finally {
      clearInterval(sampler);
    }
    expect((await stat(back)).size).toBe(200 * 1024 * 1024);
    expect(await sha256(back)).toBe(await sha256(src));
    // Client and server share this process: neither side may hold the file in memory.
    expect(peak - rssBefore).toBeLessThan(120 * 1024 * 1024);
    const remote = (await sb.fs.listFiles('big')).find((f) => f.name === 'big.bin');
    expect(remote?.size).toBe(200 * 1024 * 1024);
    await sb.fs.deleteFile('big', true);
  });

  it('refuses paths outside the sandbox, also through symlinks', async () => {
    const outside = path.join(h.server.root, 'escaped.txt');
    await expect(sb.fs.uploadFile(Buffer.from('x'), '../../../escaped.txt')).rejects.toBeInstanceOf(DaytonaFileAccessDeniedError);
    expect(existsSync(outside)).toBe(false);
    await expect(sb.fs.downloadFile('/etc/passwd')).rejects.toMatchObject({ statusCode: 403 });
    await expect(sb.fs.listFiles('/etc')).rejects.toBeInstanceOf(DaytonaFileAccessDeniedError);
    await expect(sb.fs.createFolder('/tmp/local-sandbox-evil', '755')).rejects.toMatchObject({ statusCode: 403 });
    await expect(sb.fs.deleteFile('../..', true)).rejects.toMatchObject({ statusCode: 403 });
    await sb.process.executeCommand('ln -s /etc etclink');
    await expect(sb.fs.listFiles('etclink')).rejects.toMatchObject({ statusCode: 403 });
    await expect(sb.fs.uploadFile(Buffer.from('x'), 'etclink/evil')).rejects.toMatchObject({ statusCode: 403 });
  });

  it('refuses bad JSON and malformed multipart with 400', async () => {
    const base = `${h.server.url}/toolbox/${sb.id}`;
    const badJson = await fetch(`${base}/files/bulk-download`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"paths": [' });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ statusCode: 400, error: 'Bad Request' });

    const notArray = await fetch(`${base}/files/bulk-download`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"paths": "x"}' });
    expect(notArray.status).toBe(400);

    const garbage = await fetch(`${base}/files/bulk-upload`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      body: 'this is not multipart at all',
    });
    expect(garbage.status).toBe(400);

    const noBoundary = await fetch(`${base}/files/bulk-upload`, { method: 'POST', headers: { 'content-type': 'multipart/form-data' }, body: 'x' });
    expect(noBoundary.status).toBe(400);

    const form = new FormData();
    form.append('files[0].file', new Blob(['orphan']), 'orphan.txt');
    const noPath = await fetch(`${base}/files/bulk-upload`, { method: 'POST', body: form });
    expect(noPath.status).toBe(400);
  });
});
