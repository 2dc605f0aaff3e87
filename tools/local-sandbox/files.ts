// Toolbox file routes. Uploads and downloads stream between the socket and the disk (busboy in,
// read streams out), so a 200 MB file never sits in memory. Paths resolve against the work dir and must
// stay inside the sandbox's folder: this is a guard against mistakes, not a security boundary (a
// sandbox's own commands can read anything the server's user can).
import busboy from 'busboy';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, mkdir, readdir, realpath, rename, rm, stat, unlink } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { DaytonaHttpError, daemonError, readJson, sendEmpty, sendJson, toDaytonaError } from './http-util.ts';
import type { Router } from './http-util.ts';
import type { LocalSandbox } from './sandboxes.ts';
import type { ToolboxReq } from './toolbox.ts';

function within(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** Resolves a toolbox path: relative to the work dir, `~` to the home dir. Refuses (403) any path that
 * leaves the sandbox's folder, also through a symlink. */
export async function resolveSandboxPath(sb: LocalSandbox, raw: string | null | undefined): Promise<string> {
  if (!raw) throw daemonError(400, 'path is required', 'INVALID_FILE_PATH');
  if (raw.includes('\0')) throw daemonError(400, 'invalid path', 'INVALID_FILE_PATH');
  const expanded = raw.replace(/^~(?=\/|$)/, sb.homeDir);
  const abs = path.resolve(sb.workDir, expanded);
  const denied = (): DaytonaHttpError => daemonError(403, `path ${raw} is outside the sandbox`, 'FILE_ACCESS_DENIED');
  if (!within(sb.dir, abs)) throw denied();
  // The deepest existing ancestor, with symlinks resolved, must still be inside.
  let probe = abs;
  for (;;) {
    try {
      const real = await realpath(probe);
      if (!within(await realpath(sb.dir), real)) throw denied();
      break;
    } catch (err) {
      if (err instanceof DaytonaHttpError) throw err;
      const parent = path.dirname(probe);
      if (parent === probe) break;
      probe = parent;
    }
  }
  return abs;
}

function notFound(p: string): DaytonaHttpError {
  return daemonError(404, `file ${p} not found`, 'FILE_NOT_FOUND');
}

async function statOr404(abs: string, shown: string): Promise<Stats> {
  try {
    return await stat(abs);
  } catch {
    throw notFound(shown);
  }
}

function modeString(st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'L' : '-';
  const bits = 'rwxrwxrwx';
  let s = '';
  for (let i = 0; i < 9; i++) s += st.mode & (1 << (8 - i)) ? bits[i] : '-';
  return type + s;
}

const me = userInfo();

function fileInfo(name: string, abs: string, st: Stats): Record<string, unknown> {
  const owner = st.uid === me.uid ? me.username : String(st.uid);
  return {
    name,
    path: abs,
    size: st.size,
    mode: modeString(st),
    permissions: '0' + (st.mode & 0o777).toString(8),
    isDir: st.isDirectory(),
    modTime: st.mtime.toISOString(),
    modifiedAt: st.mtime.toISOString(),
    owner,
    group: String(st.gid),
  };
}

/** Escapes a header parameter value (busboy reads backslash escapes inside quoted strings). */
function quoted(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ')}"`;
}

export function registerFileRoutes(router: Router<ToolboxReq>): void {
  router.on('GET', '/files', async (r) => {
    const raw = r.url.searchParams.get('path');
    const abs = await resolveSandboxPath(r.sandbox, raw);
    const st = await statOr404(abs, raw!);
    if (!st.isDirectory()) throw daemonError(400, `${raw!} is not a directory`, 'INVALID_FILE_PATH');
    const entries = await readdir(abs);
    const infos = await Promise.all(
      entries.map(async (name) => {
        const p = path.join(abs, name);
        const est = await stat(p).catch(() => lstat(p).catch(() => undefined));
        return est ? fileInfo(name, p, est) : undefined;
      }),
    );
    sendJson(r.res, 200, infos.filter(Boolean));
  });

  router.on('GET', '/files/info', async (r) => {
    const raw = r.url.searchParams.get('path');
    const abs = await resolveSandboxPath(r.sandbox, raw);
    sendJson(r.res, 200, fileInfo(path.basename(abs), abs, await statOr404(abs, raw!)));
  });

  router.on('POST', '/files/folder', async (r) => {
    await readJson(r.req);
    const raw = r.url.searchParams.get('path');
    const abs = await resolveSandboxPath(r.sandbox, raw);
    const modeRaw = r.url.searchParams.get('mode') || '755';
    if (!/^[0-7]{3,4}$/.test(modeRaw)) throw daemonError(400, `invalid mode ${modeRaw}`);
    await mkdir(abs, { recursive: true, mode: parseInt(modeRaw, 8) });
    sendEmpty(r.res, 201);
  });

  router.on('DELETE', '/files', async (r) => {
    const raw = r.url.searchParams.get('path');
    const abs = await resolveSandboxPath(r.sandbox, raw);
    if (abs === r.sandbox.dir) throw daemonError(403, 'refusing to delete the sandbox folder', 'FILE_ACCESS_DENIED');
    const st = await lstat(abs).catch(() => undefined);
    if (!st) throw notFound(raw!);
    if (st.isDirectory()) {
      if (r.url.searchParams.get('recursive') !== 'true') {
        throw daemonError(400, `${raw!} is a directory: set recursive to delete it`, 'INVALID_FILE_PATH');
      }
      await rm(abs, { recursive: true, force: true });
    } else await unlink(abs);
    sendEmpty(r.res, 204);
  });

  router.on('GET', '/files/download', async (r) => {
    const raw = r.url.searchParams.get('path');
    const abs = await resolveSandboxPath(r.sandbox, raw);
    const st = await statOr404(abs, raw!);
    if (st.isDirectory()) throw daemonError(400, `${raw!} is a directory`, 'INVALID_FILE_PATH');
    r.res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': st.size,
      'content-disposition': `attachment; filename=${quoted(path.basename(abs))}`,
    });
    await pipeline(createReadStream(abs), r.res);
  });

  router.on('POST', '/files/bulk-upload', (r) => bulkUpload(r));
  router.on('POST', '/files/bulk-download', (r) => bulkDownload(r));
}

/** Multipart upload: per file a field `files[i].path` and a file part `files[i].file` (the SDK sends
 * the path first). Each file is streamed to a temporary name beside its target and renamed into place
 * once complete, so a broken upload never leaves a truncated file behind. */
async function bulkUpload(r: ToolboxReq): Promise<void> {
  const type = String(r.req.headers['content-type'] ?? '');
  if (!type.startsWith('multipart/form-data')) throw daemonError(400, 'expected multipart/form-data');
  let bb: busboy.Busboy;
  try {
    bb = busboy({ headers: r.req.headers, preservePath: true, limits: { fieldSize: 64 * 1024 } });
  } catch (err) {
    throw daemonError(400, `malformed multipart request: ${(err as Error).message}`);
  }
  const paths = new Map<string, string>(); // index -> raw destination path
  const pending = new Map<string, string>(); // index -> temp file awaiting its path
  const writes: Promise<void>[] = [];
  const done: Array<{ tmp: string; index: string }> = [];
  let failure: unknown;
  const fail = (err: unknown): void => {
    failure ??= err;
  };
  const sandbox = r.sandbox;

  bb.on('field', (name, value) => {
    const m = /^files\[(\d+)\]\.path$/.exec(name);
    if (m) paths.set(m[1]!, value);
  });
  bb.on('file', (name, stream) => {
    const m = /^files\[(\d+)\]\.file$/.exec(name);
    if (!m || failure) {
      stream.resume();
      return;
    }
    const index = m[1]!;
    const task = (async () => {
      const raw = paths.get(index);
      // Without its path yet, the bytes wait in the sandbox's tmp dir.
      const dest = raw !== undefined ? await resolveSandboxPath(sandbox, raw) : undefined;
      const dir = dest ? path.dirname(dest) : sandbox.tmpDir;
      await mkdir(dir, { recursive: true });
      const tmp = path.join(dir, `.upload-${randomBytes(6).toString('hex')}`);
      try {
        await pipeline(stream, createWriteStream(tmp));
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      if (dest) await rename(tmp, dest);
      else {
        pending.set(index, tmp);
        done.push({ tmp, index });
      }
    })().catch((err: unknown) => {
      stream.resume();
      fail(err);
    });
    writes.push(task);
  });

  const finished = once(bb, 'close');
  const errored = new Promise<never>((_, reject) => bb.once('error', reject));
  r.req.pipe(bb);
  try {
    await Promise.race([finished, errored]);
  } catch (err) {
    r.req.unpipe(bb);
    r.req.resume();
    await Promise.allSettled(writes);
    await cleanup([...pending.values()]);
    throw err instanceof DaytonaHttpError ? err : daemonError(400, `malformed multipart request: ${(err as Error).message}`);
  }
  await Promise.all(writes);
  for (const { tmp, index } of done) {
    const raw = paths.get(index);
    if (raw === undefined) {
      fail(daemonError(400, `files[${index}].file has no files[${index}].path`));
      continue;
    }
    try {
      const dest = await resolveSandboxPath(sandbox, raw);
      await mkdir(path.dirname(dest), { recursive: true });
      await rename(tmp, dest);
      pending.delete(index);
    } catch (err) {
      fail(err);
    }
  }
  await cleanup([...pending.values()]);
  if (failure) throw failure;
  sendEmpty(r.res, 200);
}

async function cleanup(files: string[]): Promise<void> {
  await Promise.all(files.map((f) => rm(f, { force: true })));
}

/** Multipart download of `{paths}`: a `file` part per file (filename = the path as requested, which is
 * how the SDK matches parts to requests) or an `error` part with a JSON Daytona error. */
async function bulkDownload(r: ToolboxReq): Promise<void> {
  const body = await readJson(r.req);
  if (!Array.isArray(body.paths) || !body.paths.every((p) => typeof p === 'string')) {
    throw daemonError(400, 'paths must be an array of strings');
  }
  const requested = body.paths as string[];
  const boundary = `local-sandbox-${randomBytes(12).toString('hex')}`;
  r.res.writeHead(200, { 'content-type': `multipart/form-data; boundary=${boundary}` });
  const write = async (chunk: string | Buffer): Promise<void> => {
    if (!r.res.write(chunk)) await once(r.res, 'drain');
  };
  for (const raw of requested) {
    let abs: string;
    let st: Stats;
    try {
      abs = await resolveSandboxPath(r.sandbox, raw);
      st = await statOr404(abs, raw);
      if (st.isDirectory()) throw daemonError(400, `${raw} is a directory`, 'INVALID_FILE_PATH');
    } catch (err) {
      const e = toDaytonaError(err);
      const json = JSON.stringify(e.body());
      await write(
        `--${boundary}\r\ncontent-disposition: form-data; name="error"; filename=${quoted(raw)}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\n\r\n${json}\r\n`,
      );
      continue;
    }
    await write(
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename=${quoted(raw)}\r\n` +
        `content-type: application/octet-stream\r\ncontent-length: ${st.size}\r\n\r\n`,
    );
    for await (const chunk of createReadStream(abs)) await write(chunk as Buffer);
    await write('\r\n');
  }
  await write(`--${boundary}--\r\n`);
  r.res.end();
}
