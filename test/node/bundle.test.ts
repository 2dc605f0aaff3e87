// The Worker bundles for deployment: `wrangler deploy --dry-run --outdir` builds exactly what a deploy
// would upload, and its size is held against Cloudflare's Workers limits (developers.cloudflare.com/
// workers/platform/limits: a Worker may be 3 MB gzipped on the Free plan, 10 MB on Paid, 64 MB before
// compression). The figures are printed, so CI's log shows the trend.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/processes.ts";

const run = promisify(execFile);
const MB = 1024 * 1024;

describe("the Worker's deployment bundle", () => {
  it("builds with wrangler deploy --dry-run, within Cloudflare's size limits", { timeout: 120_000 }, async () => {
    const out = mkdtempSync(join(tmpdir(), "multishot-bundle-"));
    try {
      const { stdout, stderr } = await run("npx", ["wrangler", "deploy", "--dry-run", "--outdir", out], {
        cwd: ROOT,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
      });
      expect(stdout + stderr).toContain("--dry-run: exiting now.");
      // What would be uploaded: every module but the source map.
      const modules = readdirSync(out).filter((f) => !f.endsWith(".map") && f !== "README.md");
      expect(modules).toContain("index.js");
      const raw = modules.reduce((n, f) => n + statSync(join(out, f)).size, 0);
      const gzipped = modules.reduce((n, f) => n + gzipSync(readFileSync(join(out, f))).length, 0);
      console.log(`[bundle] ${modules.length} modules, ${(raw / MB).toFixed(2)} MB, ${(gzipped / MB).toFixed(2)} MB gzipped (Free plan limit 3 MB gzipped, Paid 10 MB; 64 MB raw); wrangler: ${/Total Upload: .*/.exec(stdout)?.[0] ?? "?"}`);
      expect(gzipped).toBeLessThan(3 * MB);
      expect(raw).toBeLessThan(64 * MB);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
