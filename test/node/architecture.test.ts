// The shape of the code, kept: no import cycle (type-only included) and the other import rules of
// .dependency-cruiser.cjs, no source file a newcomer cannot hold in mind, and the Worker's generated
// bindings matching wrangler.toml.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);
const MAX_LINES = 450;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|tsx|mjs|js)$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

describe("the code's shape", () => {
  it("has no import cycle and keeps the import rules", async () => {
    // depcruise exits non-zero and names each violation when there is one.
    const { stdout } = await run("npx", ["depcruise", "--config", ".dependency-cruiser.cjs", "--output-type", "err", "src"], { cwd: root });
    expect(stdout).toMatch(/no dependency violations found \((\d{3,}) modules/);
  });

  it(`has no source file over ${MAX_LINES} lines`, () => {
    const long = sources(join(root, "src"))
      .map((path) => ({ path: relative(root, path), lines: readFileSync(path, "utf8").split("\n").length - 1 }))
      .filter((f) => f.lines > MAX_LINES);
    expect(long).toEqual([]);
  });

  it("has the bindings `wrangler types` generates from wrangler.toml (npm run types)", async () => {
    const check = await run("npx", ["wrangler", "types", "--check", "--include-runtime=false", "--strict-vars=false", "--env-interface", "WorkerBindings"], {
      cwd: root,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    }).then(
      () => "up to date",
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ""}${err.stderr ?? ""}`,
    );
    expect(check).toBe("up to date");
  });
});
