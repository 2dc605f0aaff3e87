// A winner's tarball to a file: streamed to `<file>.part`, continued with a Range request after a
// dropped connection (or from a `.part` an earlier, interrupted download left), hashed on the way, and
// renamed into place only when its size and SHA-256 match what the API recorded for it.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import type { Writable } from "node:stream";
import type { Api } from "./api.ts";
import { CliError, EXIT } from "./errors.ts";

export interface Expected {
  size: number;
  sha256: string;
}

export interface DownloadOptions {
  /** Hears every chunk: bytes so far and the whole size. */
  onProgress?: (done: number, total: number) => void;
  /** Where `-` writes. */
  stdout?: Writable;
  /** Tries after the first one, each continuing where the last stopped. */
  retries?: number;
  sleep?: (ms: number) => Promise<void>;
}

export interface Downloaded {
  path: string;
  size: number;
  sha256: string;
  /** Bytes that were already on disk from an earlier download. */
  resumedFrom: number;
}

interface Sink {
  write(chunk: Uint8Array): Promise<void>;
  /** Drops what was written (a server that ignores Range sends the whole file again). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

export async function downloadTarball(api: Api, path: string, out: string, expected: Expected, opts: DownloadOptions = {}): Promise<Downloaded> {
  const toStdout = out === "-";
  const part = `${out}.part`;
  let have = 0;
  let hash: Hash = createHash("sha256");
  let sink: Sink;
  let resumedFrom = 0;
  if (toStdout) {
    const stdout = opts.stdout ?? process.stdout;
    sink = {
      write: (chunk) => new Promise((ok, fail) => stdout.write(chunk, (err) => (err ? fail(err) : ok()))),
      reset: async () => {
        throw new CliError(EXIT.failed, "download_failed", "the server sent the tarball from the start again; cannot take back what went to stdout");
      },
      close: async () => {},
    };
  } else {
    const existing = await stat(part).catch(() => null);
    if (existing && existing.size > 0 && existing.size <= expected.size) {
      for await (const chunk of createReadStream(part)) hash.update(chunk as Buffer);
      have = resumedFrom = existing.size;
    }
    const fh = await open(part, have > 0 ? "a" : "w", 0o644);
    sink = {
      write: async (chunk) => {
        await fh.write(chunk);
      },
      reset: async () => {
        await fh.truncate(0);
      },
      close: () => fh.close(),
    };
  }

  const retries = opts.retries ?? 5;
  const sleep = opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  let etag: string | null = null;
  try {
    for (let attempt = 0; have < expected.size; attempt++) {
      try {
        const headers: Record<string, string> = {};
        if (have > 0) {
          headers.range = `bytes=${have}-`;
          // Only a continuation of the same file; a changed file comes whole (200).
          if (etag) headers["if-range"] = etag;
        }
        const res = await api.stream(path, { headers });
        etag = res.headers.get("etag") ?? etag;
        if (res.status === 200 && have > 0) {
          await sink.reset();
          have = 0;
          hash = createHash("sha256");
        } else if (res.status === 206 && !res.headers.get("content-range")?.startsWith(`bytes ${have}-`)) {
          throw new CliError(EXIT.failed, "download_failed", `the server answered the wrong range: ${res.headers.get("content-range")}`);
        }
        if (!res.body) throw new CliError(EXIT.failed, "download_failed", "the tarball answer had no body");
        for await (const chunk of res.body) {
          hash.update(chunk);
          await sink.write(chunk);
          have += chunk.byteLength;
          opts.onProgress?.(have, expected.size);
        }
      } catch (err) {
        // A refusal (no tarball, no access) or a broken stdout is final; a dropped connection is not.
        if (err instanceof CliError && !err.transient) throw err;
        if (!(err instanceof CliError) && !isNetworkError(err)) throw err;
        if (attempt >= retries) {
          throw new CliError(EXIT.failed, "download_failed", `the download kept failing at ${have} of ${expected.size} bytes; run it again to continue`);
        }
        await sleep(Math.min(500 * 2 ** attempt, 5000));
      }
    }
  } finally {
    await sink.close();
  }

  const sha256 = hash.digest("hex");
  if (have !== expected.size || sha256 !== expected.sha256) {
    if (!toStdout) await rm(part, { force: true });
    // A `.part` left by an earlier download may belong to another file: one fresh try settles it.
    if (resumedFrom > 0) return downloadTarball(api, path, out, expected, opts);
    throw new CliError(
      EXIT.failed,
      "checksum_mismatch",
      `the tarball does not match the API's record (${have} bytes, sha256 ${sha256}; expected ${expected.size} bytes, sha256 ${expected.sha256})`,
    );
  }
  if (!toStdout) await rename(part, out);
  return { path: out, size: have, sha256, resumedFrom };
}

/** Errors of a body stream cut short (socket closed, reset) rather than of our own making. */
function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  return (
    err.name === "TypeError" ||
    err.name === "AbortError" ||
    /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|UND_ERR_\w+)$/.test(code ?? "") ||
    /terminated|socket|other side closed/i.test(err.message)
  );
}
