// The README's configuration table, the Worker's Env and what `npm start` hands to the Worker name the
// same variables and secrets: a setting added to one and forgotten in another fails here.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { PASSED_THROUGH } from "../../scripts/worker-config.ts";

const root = resolve(import.meta.dirname, "../..");

/** The Worker's settings in the README's table: the rows whose kind is `var` or `secret`. */
function readmeSettings(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Configuration"));
  const names: string[] = [];
  for (const line of section.split("\n").slice(1)) {
    if (line.startsWith("## ")) break;
    const cells = line.split(" | ");
    if (cells.length < 4 || !/\b(var|secret)\b/.test(cells[1]!)) continue;
    names.push(...[...cells[0]!.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
  }
  return names.sort();
}

/**
 * The upper-case settings of the Worker's Env interface, not its bindings: wrangler.toml's [vars] as
 * `wrangler types` generated them, and the secrets and tuning variables declared in src/env.ts.
 */
function envSettings(): string[] {
  const settings = (text: string) => [...text.matchAll(/^\s+([A-Z][A-Z0-9_]+)\??:\s*string;/gm)].map((m) => m[1]!);
  const src = readFileSync(join(root, "src/env.ts"), "utf8");
  const body = /export interface Env extends WorkerBindings \{([\s\S]*?)\n\}/.exec(src)![1]!;
  const generated = readFileSync(join(root, "worker-configuration.d.ts"), "utf8");
  const vars = /interface __BaseEnv_WorkerBindings \{([\s\S]*?)\n\}/.exec(generated)![1]!;
  return [...settings(vars), ...settings(body)].sort();
}

describe("configuration", () => {
  it("documents every setting the Worker reads, and npm start hands each one over", () => {
    const documented = readmeSettings();
    expect(documented.length).toBeGreaterThan(20);
    expect(documented).toEqual(envSettings());
    // PUBLIC_URL is handed over too, with npm start's own default when unset; MULTISHOT_BOOT_ID and
    // MULTISHOT_LOCAL are npm start's own, set on every start (the second only in local mode).
    expect([...PASSED_THROUGH, "PUBLIC_URL", "MULTISHOT_BOOT_ID", "MULTISHOT_LOCAL"].sort()).toEqual(documented);
  });
});
