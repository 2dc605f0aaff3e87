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

/** The upper-case settings of the Worker's Env interface (src/env.ts), not its bindings. */
function envSettings(): string[] {
  const src = readFileSync(join(root, "src/env.ts"), "utf8");
  const body = /export interface Env \{([\s\S]*?)\n\}/.exec(src)![1]!;
  return [...body.matchAll(/^\s+([A-Z][A-Z0-9_]+)\??:\s*string;/gm)].map((m) => m[1]!).sort();
}

describe("configuration", () => {
  it("documents every setting the Worker reads, and npm start hands each one over", () => {
    const documented = readmeSettings();
    expect(documented.length).toBeGreaterThan(20);
    expect(documented).toEqual(envSettings());
    // PUBLIC_URL is handed over too, with npm start's own default when unset.
    expect([...PASSED_THROUGH, "PUBLIC_URL"].sort()).toEqual(documented);
  });
});
