// `npm start`: multishot on this machine.
// Applies local D1 migrations, starts the local sandbox server (unless DAYTONA_API_KEY or
// DAYTONA_JWT_TOKEN says to use real Daytona), runs the Worker with `wrangler dev`, and prints
// `multishot ready at http://127.0.0.1:<port>` once /health answers.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startLocalSandboxServer } from "../tools/local-sandbox/server.ts";
import { LOCAL_SANDBOX_URL_FILE, ROOT, STATE_DIR } from "./local-state.ts";
import { describeReach, probeReach } from "./reach-check.ts";
import { PASSED_THROUGH } from "./worker-config.ts";


const root = ROOT;
const port = Number(process.env.PORT ?? 8787);
const stateDir = STATE_DIR;
const local = !process.env.DAYTONA_API_KEY && !process.env.DAYTONA_JWT_TOKEN;
const children: ChildProcess[] = [];
let stopping = false;

/** `--verbose` (or MULTISHOT_VERBOSE=1): every line the tools print; otherwise one line per step. */
const verbose = process.argv.includes("--verbose") || process.env.MULTISHOT_VERBOSE === "1";
/** No telemetry notice or prompt from wrangler, and no metrics sent; read when a tool starts (the start's mark is set by then). */
const toolEnv = () => ({ ...process.env, WRANGLER_SEND_METRICS: "false" });

/** Runs a tool to its end; its output is shown with --verbose, or when it fails. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: toolEnv() });
    let out = "";
    const take = (chunk: Buffer) => {
      out += chunk.toString();
      if (verbose) process.stdout.write(chunk);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("exit", (code) => {
      if (code === 0) return ok(out);
      if (!verbose) process.stderr.write(out);
      fail(new Error(`${cmd} ${args.join(" ")} exited with ${code}`));
    });
  });
}

/** A value kept in the state folder: read when there, else made and written owner-only. */
function kept(name: string, make: () => string): string {
  const file = join(stateDir, `.multishot-${name}`);
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    const value = make();
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(file, `${value}\n`, { mode: 0o600 });
    return value;
  }
}

const portTakenMessage = (why: string) =>
  `port ${port} on 127.0.0.1 is already in use (${why}): stop what holds it (an earlier npm start?) or set PORT to another port`;

/** Refuses a taken port before anything starts: wrangler would print its error and carry on. */
function checkPortFree(): Promise<void> {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.once("error", (err: NodeJS.ErrnoException) =>
      fail(new Error(err.code === "EADDRINUSE" ? portTakenMessage("something listens there") : `port ${port}: ${err.message}`)),
    );
    probe.listen(port, "127.0.0.1", () => probe.close(() => ok()));
  });
}

/**
 * Waits until the Worker this start launched answers: its /health must echo `bootId`. Any other answer
 * that looks served (a 2xx without it) means another server took the port after the check above.
 */
async function waitForHealth(url: string, bootId: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      const body = (await res.json().catch(() => null)) as { boot?: string } | null;
      if (res.ok && body?.boot === bootId) return;
      if (res.ok) throw new Error(portTakenMessage("another server answers there"));
    } catch (err) {
      if (err instanceof Error && err.message.startsWith(`port ${port}`)) throw err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the Worker did not answer ${url}/health within ${timeoutMs / 1000} s`);
}

async function main() {
  await checkPortFree();
  const bootId = randomBytes(12).toString("hex");
  // The mark every process this start begins carries (wrangler, workerd, sandbox processes): its
  // watchdog kills what carries it once this process is gone, however it ended.
  process.env.MULTISHOT_START = bootId;
  spawn(process.execPath, [join(root, "scripts", "watchdog.mjs"), String(process.pid), bootId], {
    detached: true,
    stdio: "ignore",
    env: { PATH: process.env.PATH ?? "" },
  }).unref();
  const publicUrl = process.env.PUBLIC_URL ?? `http://127.0.0.1:${port}`;
  const config: Record<string, string> = {};
  for (const key of PASSED_THROUGH) if (process.env[key]) config[key] = process.env[key]!;
  config.PUBLIC_URL = publicUrl;
  config.MULTISHOT_BOOT_ID = bootId;

  let closeSandboxServer = async () => {};
  let madeKey: string | null = null;
  if (local) {
    const sandboxServer = await startLocalSandboxServer({
      port: Number(process.env.LOCAL_SANDBOX_PORT ?? 0),
      root: process.env.LOCAL_SANDBOX_ROOT ?? join(root, ".local-sandbox"),
    });
    closeSandboxServer = () => sandboxServer.close();
    config.DAYTONA_API_URL = sandboxServer.apiUrl;
    // For `npm run snapshot` while this runs: which local server to build on (its port changes per start).
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(LOCAL_SANDBOX_URL_FILE, `${sandboxServer.apiUrl}\n`);
    console.log(`local sandbox server at ${sandboxServer.url} (sandboxes are folders and processes on this machine)`);
    console.log(
      sandboxServer.behaviour.profile === "daytona"
        ? "it behaves as Daytona's Tier 1 does: sandboxes cannot reach this service (nor any port of this machine but their own), deletes only mark, quotas of 10 vCPU / 10 GiB / 30 GiB; LOCAL_SANDBOX_PROFILE=lenient for open egress"
        : "it runs its lenient profile: open egress (as Daytona's Tier 3), deletes at once, no quotas",
    );
    config.MULTISHOT_LOCAL = "1";
    // Made once per state folder and kept there (owner-only), so a restart keeps signed URLs, webhook
    // secrets and the printed key working.
    config.MULTISHOT_SIGNING_SECRET ??= kept("signing-secret", () => randomBytes(32).toString("hex"));
    if (!config.MULTISHOT_DEV_API_KEY) {
      config.MULTISHOT_DEV_API_KEY = kept("dev-api-key", () => `msk_local_${randomBytes(12).toString("hex")}`);
      madeKey = config.MULTISHOT_DEV_API_KEY;
    }
  } else {
    console.log(`using Daytona at ${config.DAYTONA_API_URL ?? "the URL in wrangler.toml"}`);
  }

  const migrated = await run("wrangler", ["d1", "migrations", "apply", "DB", "--local", "--persist-to", stateDir]);
  // Wrangler prints its table once per migration; each applied one is a "<name>.sql │ ✅" row.
  const applied = new Set([...migrated.matchAll(/(\d{4}_[\w-]+\.sql)\s*│\s*✅/g)].map((m) => m[1])).size;
  console.log(`applied ${applied} migration${applied === 1 ? "" : "s"} to the local D1 (state in ${stateDir})`);

  // Secrets go to wrangler through a private env file, never on a command line.
  const secretsDir = mkdtempSync(join(tmpdir(), "multishot-env-"));
  const envFile = join(secretsDir, ".env");
  writeFileSync(envFile, Object.entries(config).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("\n") + "\n", { mode: 0o600 });

  const wrangler = spawn(
    "wrangler",
    ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", stateDir, "--env-file", envFile, "--show-interactive-dev-session=false"],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
      // The Worker never reads request.cf: no fetch of it from workers.cloudflare.com at start (offline
      // or firewalled, that fetch fails with a stack trace or waits for its timeout).
      env: { ...toolEnv(), CLOUDFLARE_CF_FETCH_ENABLED: process.env.CLOUDFLARE_CF_FETCH_ENABLED ?? "false" },
    },
  );
  children.push(wrangler);
  // wrangler dev's banner and request log show with --verbose; its errors (and the Worker's own log
  // lines: console.* of the Worker, which multishot keeps to failures) always do.
  const devLog: string[] = [];
  const relay = (stream: NodeJS.WriteStream) => (chunk: Buffer) => {
    const text = chunk.toString();
    devLog.push(text);
    if (devLog.length > 200) devLog.shift();
    if (verbose) return void stream.write(chunk);
    for (const line of text.split("\n")) {
      if (/✘|\[ERROR\]|\berror\b|unhandled|exception/i.test(line) && !/^\s*$/.test(line)) stream.write(`${line}\n`);
    }
  };
  wrangler.stdout!.on("data", relay(process.stdout));
  wrangler.stderr!.on("data", relay(process.stderr));

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const child of children) {
      try {
        if (child.pid) process.kill(-child.pid, "SIGTERM");
      } catch {}
    }
    rmSync(secretsDir, { recursive: true, force: true });
    await closeSandboxServer();
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  // The terminal closed.
  process.on("SIGHUP", () => void stop(0));
  wrangler.on("exit", (code) => {
    if (!stopping) {
      if (!verbose) process.stderr.write(devLog.join("").split("\n").slice(-40).join("\n"));
      console.error(`wrangler dev exited with ${code}`);
      void stop(code ?? 1);
    }
  });

  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, bootId, 60_000);
  startLocalCron(url);
  console.log(`multishot ready at ${url}`);
  if (madeKey) console.log(`API key of the local account: ${madeKey} (kept in ${stateDir}; set MULTISHOT_DEV_API_KEY to choose it)`);
  if (!local) {
    // Whether sandboxes reach PUBLIC_URL decides reports, the gateway and API-key mode: say it.
    const env = { ...process.env, ...config };
    probeReach(env, publicUrl)
      .then((r) => console.log(describeReach(r, publicUrl, env)))
      .catch((err) => console.error(`could not check whether sandboxes reach PUBLIC_URL: ${err instanceof Error ? err.message : String(err)}`));
  }
}

/** `wrangler dev` never fires cron triggers: fire wrangler.toml's own (the sandbox sweeper) on its schedule. */
function startLocalCron(url: string): void {
  const cron = /crons\s*=\s*\["([^"]+)"/.exec(readFileSync(join(root, "wrangler.toml"), "utf8"))?.[1];
  const everyMinutes = cron ? Number(/^\*\/(\d+) \* \* \* \*$/.exec(cron)?.[1]) : NaN;
  if (!cron || !Number.isInteger(everyMinutes) || everyMinutes < 1) return;
  const fire = () => {
    fetch(`${url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent(cron)}`, { signal: AbortSignal.timeout(60_000) })
      .then((res) => res.body?.cancel())
      .catch((err) => console.error(`local cron: ${(err as Error).message}`));
  };
  setInterval(fire, everyMinutes * 60_000).unref();
  console.log(`the sandbox sweeper runs every ${everyMinutes} minutes (cron "${cron}")`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  for (const child of children) {
    try {
      if (child.pid) process.kill(-child.pid, "SIGTERM");
    } catch {}
  }
  process.exit(1);
});
