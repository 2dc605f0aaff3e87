// `npm start` (scripts/start.ts) as its process life goes: on a port something else already holds it
// refuses at once with a message naming the port and what to do, and never prints the ready line (the
// server holding the port answers /health with 200, as an earlier Worker or the local sandbox server
// would); killed with SIGKILL mid-run it leaves no process behind, and started again on the same state it
// carries on: a round that ended before the kill is picked and continued, the run in flight ends.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { ROOT, startProcess } from "../support/processes.ts";
import { freePort } from "../support/service.ts";

let holder: Server;
let port: number;
beforeAll(async () => {
  holder = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'));
  await new Promise<void>((ok) => holder.listen(0, "127.0.0.1", ok));
  port = (holder.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((ok) => holder.close(() => ok())));

describe("npm start on a taken port", () => {
  it("exits non-zero with the reason and no ready line", async () => {
    const child = spawn(process.execPath, ["scripts/start.ts"], { cwd: ROOT, env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((ok) => child.on("exit", ok));
    expect(code).not.toBe(0);
    expect(out).toContain(`port ${port} on 127.0.0.1 is already in use`);
    expect(out).toContain("set PORT");
    expect(out).not.toMatch(/multishot ready at/);
    // It stopped before starting anything: no sandbox server, no migrations.
    expect(out).not.toMatch(/local sandbox server at/);
  }, 30_000);
});

describe("npm start, killed and started again", () => {
  it("leaves no process behind a SIGKILL, and the next start carries on: a pick after it, and the run that was in flight", { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "multishot-restart-"));
    const env = {
      PORT: String(await freePort()),
      MULTISHOT_DEV_API_KEY: "restart-dev-key",
      MULTISHOT_STATE_DIR: join(dir, "state"),
      LOCAL_SANDBOX_ROOT: join(dir, "sandboxes"),
      POLL_INTERVAL_MS: "1000",
    };
    const start = () => startProcess(["scripts/start.ts"], /multishot ready at (http:\/\/127\.0\.0\.1:\d+)/, { env, timeoutMs: 90_000 });
    const api = (base: string, path: string, init: { method?: string; json?: unknown } = {}) =>
      fetch(`${base}${path}`, {
        method: init.method ?? "GET",
        headers: { authorization: "Bearer restart-dev-key", ...(init.json !== undefined ? { "content-type": "application/json" } : {}) },
        ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
      });
    const view = async (base: string, id: string) => (await (await api(base, `/api/runs/${id}`)).json()) as RunView;
    const until = async (base: string, id: string, done: (r: RunView) => boolean, ms = 120_000) => {
      const end = Date.now() + ms;
      for (;;) {
        const r = await view(base, id);
        if (done(r)) return r;
        if (Date.now() > end) throw new Error(`run ${id} did not get there: ${JSON.stringify(r, null, 2)}`);
        await new Promise((ok) => setTimeout(ok, 300));
      }
    };
    let second: Awaited<ReturnType<typeof start>> | undefined;
    // The first start may lose its free port to another test's server before wrangler binds it: then
    // another port (the second start must find the first one's port free again, which is the point).
    const firstStart = async () => {
      for (let tries = 1; ; tries++) {
        try {
          return await start();
        } catch (err) {
          if (tries >= 3 || !/already in use/i.test(String(err))) throw err;
          env.PORT = String(await freePort());
        }
      }
    };
    try {
      const first = await firstStart();
      const base = first.match[1]!;
      // A finished round waiting for its pick, and a run whose agent is at work.
      const picked = ((await (await api(base, "/api/runs", { method: "POST", json: { prompt: "a page [add-only]", agent: "demo", attempts: 2 } })).json()) as { id: string }).id;
      await until(base, picked, (r) => r.rounds[0]!.status === "finished");
      const busy = ((await (await api(base, "/api/runs", { method: "POST", json: { prompt: "a slow page [slow:5000]", agent: "demo", attempts: 1 } })).json()) as { id: string }).id;
      const working = await until(base, busy, (r) => r.rounds[0]!.attempts[0]!.status === "running_agent");
      const sandboxId = working.rounds[0]!.attempts[0]!.sandboxId!;

      // SIGKILL of npm start itself (not its process group), as an OOM kill or a closed terminal would.
      process.kill(first.child.pid!, "SIGKILL");
      const leftovers = () => processesWith([`MULTISHOT_STATE_DIR=${env.MULTISHOT_STATE_DIR}`, `LOCAL_SANDBOX_ID=${sandboxId}`]);
      await expect.poll(leftovers, { timeout: 10_000, interval: 250 }).toEqual([]);

      second = await start();
      expect(second.match[1]).toBe(base);
      // The round that ended before the kill: picked now, its winner stored, a round 2 run from it.
      expect((await api(base, `/api/runs/${picked}/rounds/1/winner`, { method: "POST", json: { attempt: 2 } })).status).toBe(202);
      const stored = await until(base, picked, (r) => r.rounds[0]!.winner?.status === "stored" || r.rounds[0]!.winner?.status === "failed");
      expect(stored.rounds[0]!.winner).toMatchObject({ status: "stored", attempt: 2 });
      expect((await api(base, `/api/runs/${picked}/rounds`, { method: "POST", json: { prompt: "and more [add-only]" } })).status).toBe(202);
      const round2 = await until(base, picked, (r) => r.rounds[1]?.status === "finished");
      expect(round2.rounds[1]!.attempts.map((a) => a.status)).toEqual(["done", "done"]);
      // The run that was in flight ends: done, or failed with its reason.
      const ended = await until(base, busy, (r) => r.status !== "running");
      const a = ended.rounds[0]!.attempts[0]!;
      expect(a.status === "done" || (a.status === "failed" && Boolean(a.error))).toBe(true);
      for (const id of [picked, busy]) await api(base, `/api/runs/${id}/cancel`, { method: "POST" });
    } finally {
      await second?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Processes (other than this one) whose environment holds any of these `NAME=value` entries. */
function processesWith(entries: string[]): number[] {
  const needles = entries.map((e) => Buffer.from(`${e}\0`));
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let environ: Buffer;
    try {
      environ = readFileSync(`/proc/${name}/environ`);
    } catch {
      continue;
    }
    if (needles.some((n) => environ.indexOf(n) === 0 || environ.includes(Buffer.concat([Buffer.from([0]), n])))) found.push(Number(name));
  }
  return found;
}
