// What a script can count on before any run exists: help, and exit code 2 for a wrong command line and
// 3 for a missing key, with errors as JSON under --json. Most cases call the CLI in this process (the
// same function bin/multishot runs); a few run the real command, exit code and all.
import { PassThrough, Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { cli } from "../../src/cli/cli.ts";
import { writeConfigFile } from "../../src/cli/config.ts";
import { freePort } from "../support/service.ts";
import { freshConfigHome, removeTempDirs, runCli } from "./helpers.ts";

async function inProcess(args: string[], env: Record<string, string | undefined>) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await cli(args, { stdout, stderr, stdin: Readable.from([]), env });
  return { code, stdout: out, stderr: err };
}

// No service, no key, no saved login.
const bare = { MULTISHOT_URL: undefined, MULTISHOT_API_KEY: undefined, XDG_CONFIG_HOME: freshConfigHome() };
afterAll(removeTempDirs);
const configured = { ...bare, MULTISHOT_URL: "http://127.0.0.1:9", MULTISHOT_API_KEY: "k" };

describe("the command line", () => {
  it("lists every command in its help, and each command's options in its own", async () => {
    const help = await runCli(["--help"], { env: bare });
    expect(help.code).toBe(0);
    for (const name of ["run", "watch", "status", "pick", "next", "open", "download", "cancel", "list", "login", "logout"]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name}\\b`, "m"));
    }
    const run = await inProcess(["help", "run"], bare);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("usage: multishot run <prompt> [options]");
    expect(run.stdout).toMatch(/-n, --attempts N +parallel attempts/);
    const none = await inProcess([], bare);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("usage: multishot <command>");
  });

  it("answers a wrong command line with exit 2 and says what is wrong", async () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /unknown command: frobnicate/],
      [["run"], /missing arguments\nusage: multishot run <prompt>/],
      [["run", "a site", "--bogus"], /Unknown option '--bogus'/],
      [["run", "a site", "--attempts", "9"], /--attempts must be a whole number from 1 to 8, got 9/],
      [["run", "a site", "--ref", "main"], /--ref needs --git/],
      [["pick", "run_aaaaaaaaaaaaaaaaaaaa", "two"], /<attempt> must be a whole number/],
      [["status", "bakery"], /not a run id: bakery/],
      [["open", "run_aaaaaaaaaaaaaaaaaaaa", "--expires", "soon"], /--expires must be a duration/],
      [["download", "run_aaaaaaaaaaaaaaaaaaaa", "-o", "-", "--json"], /--json and -o - both want stdout/],
    ];
    const results = await Promise.all(cases.map(([args]) => inProcess(args, configured)));
    results.forEach((r, i) => {
      expect({ args: cases[i]![0], code: r.code }).toEqual({ args: cases[i]![0], code: 2 });
      expect(r.stderr).toMatch(cases[i]![1]);
      expect(r.stdout).toBe("");
    });
  });

  it("exits 3 without a key, pointing at `multishot login`; under --json the error is JSON on stderr", async () => {
    const human = await runCli(["list"], { env: bare });
    expect(human.code).toBe(3);
    expect(human.stderr).toContain("run `multishot login` or set MULTISHOT_URL and MULTISHOT_API_KEY");
    const json = await inProcess(["list", "--json"], { ...bare, MULTISHOT_URL: "http://127.0.0.1:9" });
    expect(json.code).toBe(3);
    expect(json.stdout).toBe("");
    expect(JSON.parse(json.stderr)).toEqual({
      error: { code: "not_configured", message: "MULTISHOT_API_KEY not set: run `multishot login` or set MULTISHOT_API_KEY" },
    });
  });

  it("exits 1 at once when nothing listens at the service's address", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const r = await runCli(["list"], { env: { ...configured, MULTISHOT_URL: url } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach ${url}: ECONNREFUSED`);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("sends the saved key only to the saved service", async () => {
    const home = freshConfigHome();
    const saved = `http://127.0.0.1:${await freePort()}`;
    writeConfigFile({ XDG_CONFIG_HOME: home }, { url: saved, apiKey: "msk_saved" });
    const env = { ...bare, XDG_CONFIG_HOME: home };
    // The saved service: the key is found (and the service, not running, cannot be reached).
    const same = await inProcess(["list"], env);
    expect(same.code).toBe(1);
    expect(same.stderr).toContain(`cannot reach ${saved}`);
    // Elsewhere, by flag or environment: no key, rather than the saved one.
    const elsewhere = await inProcess(["list", "--url", "http://127.0.0.1:1"], env);
    expect(elsewhere.code).toBe(3);
    expect(elsewhere.stderr).toContain(`MULTISHOT_API_KEY not set (the saved login is for ${saved})`);
    expect((await inProcess(["list"], { ...env, MULTISHOT_URL: "http://127.0.0.1:1" })).code).toBe(3);
  });
});
