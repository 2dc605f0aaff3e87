// `npm start` as a new user runs it: the service comes up on the local sandbox server with the demo
// agent, and a 4-attempt run completes with every runner report pushed to the Worker.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../support/processes.ts";
import { startService, type Service } from "../support/service.ts";

let service: Service;
beforeAll(async () => {
  // Open egress (Tier 3): this file follows the runners' pushed reports; the rest of the suite runs as
  // restricted as Daytona's Tier 1 (npm start's default).
  service = await startService({ LOCAL_SANDBOX_PROFILE: "lenient" });
});
afterAll(async () => {
  await service?.close();
});

async function waitForRun(id: string, done: (r: RunView) => boolean, timeoutMs = 60_000): Promise<RunView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = (await (await service.api(`/api/runs/${id}`)).json()) as RunView;
    if (done(run)) return run;
    if (Date.now() > until) throw new Error(`run ${id} did not finish: ${JSON.stringify(run, null, 2)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("npm start", () => {
  it("prints one line per step, then the ready line, and serves /health", async () => {
    expect(service.output()).toMatch(/multishot ready at http:\/\/127\.0\.0\.1:\d+/);
    // A quiet start: the migrations in one line, no wrangler tables, banner or telemetry notice.
    expect(service.output()).toMatch(/^applied \d+ migrations to the local D1 \(state in .+\)$/m);
    expect(service.output()).not.toMatch(/┌|│|telemetry|⛅️|Resource location/i);
    expect(service.localSandboxUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${service.url}/health`);
    expect(await res.json()).toMatchObject({ ok: true });
  });

  it("runs 4 demo attempts to done, with the agents' reports pushed rather than polled", async () => {
    const res = await service.api("/api/runs", { method: "POST", json: { prompt: "a tiny site", agent: "demo" } });
    expect(res.status).toBe(202);
    const { id, links } = (await res.json()) as { id: string; links: { self: string } };
    expect(links.self).toBe(`${service.url}/api/runs/${id}`);

    const run = await waitForRun(id, (r) => r.status !== "running");
    // The round ended with done attempts and no winner: the run waits for a pick.
    expect(run.status).toBe("awaiting_pick");
    expect(run.rounds[0]!.attempts.map((a) => a.status)).toEqual(["done", "done", "done", "done"]);

    const { events } = (await (await service.api(`/api/runs/${id}/events`)).json()) as { events: { type: string }[] };
    expect(events.filter((e) => e.type === "agent.result")).toHaveLength(4);
    expect(events.filter((e) => e.type === "agent.tool")).toHaveLength(12);
    // Each attempt ran four jobs, and the runners' reports carried their exits. A job's early polls (1,
    // 2, 4, 8 s after its start) can win a race with a report still in flight on a loaded machine, so
    // one or two may be found by a poll; with the reports lost, all 16 are.
    expect(events.filter((e) => e.type === "job.exit_polled").length).toBeLessThanOrEqual(2);

    // Cancelling the run gives back every sandbox.
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
    await expect
      .poll(
        async () => {
          const admin = (await (await fetch(`${service.localSandboxUrl}/admin/sandboxes`)).json()) as { live: number };
          return admin.live;
        },
        { timeout: 15_000 },
      )
      .toBe(0);
  });

  it("starts from a git repository: cloned, checked out at the ref, and the diff is against it", async () => {
    // A repository served over git's "dumb" HTTP protocol by a static file server.
    const dir = mkdtempSync(join(tmpdir(), "multishot-git-"));
    const git = (...args: string[]) => execFileSync("git", args, { cwd: join(dir, "src"), encoding: "utf8" });
    mkdirSync(join(dir, "src"));
    git("init", "-q", "-b", "main");
    writeFileSync(join(dir, "src", "README.md"), "the upstream project\n");
    writeFileSync(join(dir, "src", "index.html"), "<p>upstream</p>\n");
    git("add", "-A");
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "upstream commit");
    git("tag", "v1");
    git("rm", "-q", "README.md");
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "after v1");
    execFileSync("git", ["clone", "-q", "--bare", join(dir, "src"), join(dir, "repo.git")]);
    execFileSync("git", ["update-server-info"], { cwd: join(dir, "repo.git") });
    const server = createServer((req, res) => {
      const path = join(dir, decodeURIComponent(new URL(req.url!, "http://x").pathname));
      if (!path.startsWith(dir) || !existsSync(path) || statSync(path).isDirectory()) return res.writeHead(404).end();
      res.end(readFileSync(path));
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/repo.git`;
    try {
      const res = await service.api("/api/runs", { method: "POST", json: { prompt: "on top [add-only]", agent: "demo", attempts: 1, base: { git: url, ref: "v1" } } });
      const { id } = (await res.json()) as { id: string };
      const run = await waitForRun(id, (r) => r.status !== "running");
      const a = run.rounds[0]!.attempts[0]!;
      expect(a.error).toBeNull();
      expect(a.diffStats).toEqual({ files: 1, additions: 1, deletions: 0 });
      const ws = join(service.sandboxRoot, "sandboxes", a.sandboxId!, "home", "workspace");
      expect(readFileSync(join(ws, "README.md"), "utf8")).toBe("the upstream project\n");
      const log = execFileSync("git", ["log", "--format=%s"], { cwd: ws, encoding: "utf8" });
      expect(log.trim().split("\n")).toEqual(["multishot: round 1 base", "upstream commit"]);
      const bad = await service.api("/api/runs", { method: "POST", json: { prompt: "x", agent: "demo", attempts: 1, base: { git: url, ref: "no-such-ref" } } });
      const badId = ((await bad.json()) as { id: string }).id;
      const failed = await waitForRun(badId, (r) => r.status !== "running");
      expect(failed.rounds[0]!.attempts[0]!.error).toContain("seeding the workspace failed");
      for (const r of [id, badId]) await service.api(`/api/runs/${r}/cancel`, { method: "POST" });
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("accepts a key bootstrapped with npm run create-key", async () => {
    const out = execFileSync("npm", ["run", "--silent", "create-key", "--", "--account", "ops", "--scopes", "runs:read", "--persist-to", service.stateDir], {
      cwd: ROOT,
      encoding: "utf8",
    });
    const key = /^key (msk_\S+)$/m.exec(out)?.[1];
    expect(key).toBeTruthy();
    expect((await service.api("/api/runs", { key })).status).toBe(200);
    expect((await service.api("/api/runs", { method: "POST", json: { prompt: "x" }, key })).status).toBe(403);
  });

  it("builds a snapshot with npm run snapshot on its local sandbox server, and a run started from it finds the agent preinstalled", async () => {
    const snapshot = (args: string[]) =>
      execFileSync("npm", ["run", "--silent", "snapshot", "--", ...args], {
        cwd: ROOT,
        encoding: "utf8",
        // No Daytona named: it finds the local sandbox server of the running `npm start` by its state folder.
        env: { ...process.env, MULTISHOT_STATE_DIR: service.stateDir, DAYTONA_API_KEY: "", DAYTONA_JWT_TOKEN: "", DAYTONA_API_URL: "" },
      });
    const out = snapshot(["--agents", "demo", "--name", "e2e-agents"]);
    // The build's log as it came (the SDK followed it), then the name to use.
    expect(out).toContain(`at ${service.localSandboxUrl}/api`);
    expect(out).toMatch(/^Step 2\/3 : RUN /m);
    expect(out).toContain("1.0.0 (multishot demo agent)");
    expect(out).toMatch(/^snapshot ready: e2e-agents$/m);
    expect(out).toContain("set DAYTONA_SNAPSHOT=e2e-agents");
    // Asked again, the active snapshot is kept, not built again.
    expect(snapshot(["--agents", "demo", "--name", "e2e-agents"])).toContain("snapshot e2e-agents is active already");

    const res = await service.api("/api/runs", { method: "POST", json: { prompt: "from the snapshot", agent: "demo", attempts: 1, sandbox: { snapshot: "e2e-agents" } } });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const run = await waitForRun(id, (r) => r.status !== "running");
    expect(run.rounds[0]!.attempts[0]).toMatchObject({ status: "done", agentSetup: { how: "preinstalled", snapshot: "e2e-agents", text: "1.0.0 preinstalled in snapshot e2e-agents" } });
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  }, 120_000);

  it("streams the run's events live as Server-Sent Events, resumable with Last-Event-ID", async () => {
    const res = await service.api("/api/runs", { method: "POST", json: { prompt: "streamed [slow:700]", agent: "demo", attempts: 2 } });
    const { id } = (await res.json()) as { id: string };
    const read = async (headers: Record<string, string>, until: (events: { id: number; type: string }[]) => boolean) => {
      const ctrl = new AbortController();
      const stream = await fetch(`${service.url}/api/runs/${id}/events`, {
        headers: { authorization: `Bearer ${service.key}`, accept: "text/event-stream", ...headers },
        signal: ctrl.signal,
      });
      expect(stream.headers.get("content-type")).toBe("text/event-stream");
      const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
      const events: { id: number; type: string }[] = [];
      let buffer = "";
      const deadline = Date.now() + 60_000;
      while (!until(events) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const idLine = /^id: (\d+)$/m.exec(block);
          const typeLine = /^event: (.+)$/m.exec(block);
          if (idLine && typeLine) events.push({ id: Number(idLine[1]), type: typeLine[1]! });
        }
      }
      ctrl.abort();
      return events;
    };
    // Live, then cut mid-run: the first connection drops after the first transcript entry.
    const first = await read({}, (evs) => evs.some((e) => e.type === "agent.text"));
    expect(first.some((e) => e.type === "run.status")).toBe(false);
    const cutAt = first[first.length - 1]!.id;
    // Events keep happening while nobody listens; then the client comes back with Last-Event-ID.
    await new Promise((r) => setTimeout(r, 1500));
    const second = await read({ "last-event-id": String(cutAt) }, (evs) => evs.some((e) => e.type === "run.status"));
    expect(second[0]!.id).toBeGreaterThan(cutAt);
    // Together they are exactly the whole log, read afresh once the run is over: none lost, none repeated.
    const whole = await read({}, (evs) => evs.some((e) => e.type === "run.status"));
    expect([...first, ...second].map((e) => e.id)).toEqual(whole.map((e) => e.id));
    expect(whole.filter((e) => e.type === "agent.result")).toHaveLength(2);
    expect(new Set(whole.map((e) => e.id)).size).toBe(whole.length);
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });

  it("keeps secrets out of API answers", async () => {
    const res = await service.api("/api/runs", { method: "POST", json: { prompt: "secret check", agent: "demo", attempts: 1 } });
    const { id } = (await res.json()) as { id: string };
    const run = await waitForRun(id, (r) => r.status !== "running");
    const text = JSON.stringify(run);
    expect(text).not.toContain(service.key);
    await service.api(`/api/runs/${id}/cancel`, { method: "POST" });
  });
});
