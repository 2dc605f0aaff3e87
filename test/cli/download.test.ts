// A winner's tarball reaches the disk whole even when the connection drops: the download continues
// with a Range request, a `.part` from an earlier try is continued, and nothing that fails its SHA-256
// is left behind under the final name.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Api } from "../../src/cli/api.ts";
import { downloadTarball } from "../../src/cli/download.ts";
import { CliError, EXIT } from "../../src/cli/errors.ts";
import { removeTempDirs, sha256, tempDir } from "./helpers.ts";

const body = randomBytes(300 * 1024);
const expected = { size: body.length, sha256: sha256(body) };
const PATH = "/api/runs/run_x/rounds/1/winner.tar.gz";
let requests: (string | undefined)[] = [];
/** Answers to cut short: the next n full-file answers stop after 100 KB. */
let cutNext = 0;
let api: Api;
let close: () => void;
const dir = tempDir("download");

beforeAll(async () => {
  const server = createServer((req, res) => {
    requests.push(req.headers.range);
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    const headers = { "content-type": "application/gzip", etag: '"v1"', "content-length": String(body.length - start) };
    if (m) res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` });
    else res.writeHead(200, headers);
    if (cutNext > 0 && !m) {
      cutNext--;
      res.write(body.subarray(0, 100 * 1024));
      setTimeout(() => res.destroy(), 50);
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  api = new Api({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiKey: "k", userAgent: "test" });
  close = () => {
    server.closeAllConnections();
    server.close();
  };
});
afterAll(() => {
  close();
  removeTempDirs();
});

const opts = { sleep: async () => {} };

describe("downloading a winner's tarball", () => {
  it("continues a dropped download where it stopped and checks the whole file's SHA-256", async () => {
    requests = [];
    cutNext = 1;
    const out = join(dir, "dropped.tar.gz");
    const progress: number[] = [];
    const got = await downloadTarball(api, PATH, out, expected, { ...opts, onProgress: (done) => progress.push(done) });
    expect(got).toMatchObject({ path: out, size: body.length, sha256: expected.sha256, resumedFrom: 0 });
    expect(sha256(readFileSync(out))).toBe(expected.sha256);
    expect(existsSync(`${out}.part`)).toBe(false);
    expect(requests).toHaveLength(2);
    expect(requests[0]).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(requests[1]!)![1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(100 * 1024);
    expect(progress[progress.length - 1]).toBe(body.length);
  });

  it("continues the .part an interrupted run of the command left", async () => {
    requests = [];
    const out = join(dir, "part.tar.gz");
    writeFileSync(`${out}.part`, body.subarray(0, 1000));
    const got = await downloadTarball(api, PATH, out, expected, opts);
    expect(got.resumedFrom).toBe(1000);
    expect(requests).toEqual(["bytes=1000-"]);
    expect(sha256(readFileSync(out))).toBe(expected.sha256);
  });

  it("starts over when a leftover .part belongs to another file", async () => {
    requests = [];
    const out = join(dir, "stale.tar.gz");
    writeFileSync(`${out}.part`, randomBytes(1000));
    await downloadTarball(api, PATH, out, expected, opts);
    expect(requests).toEqual(["bytes=1000-", undefined]);
    expect(sha256(readFileSync(out))).toBe(expected.sha256);
  });

  it("refuses a file that does not match the API's record, and leaves nothing behind", async () => {
    const out = join(dir, "mismatch.tar.gz");
    const err = await downloadTarball(api, PATH, out, { size: body.length, sha256: "0".repeat(64) }, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(err).toMatchObject({ exitCode: EXIT.failed, code: "checksum_mismatch" });
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.part`)).toBe(false);
  });
});
