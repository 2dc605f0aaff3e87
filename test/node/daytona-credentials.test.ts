// API-key mode when sandboxes cannot reach the Worker, as on Daytona's Tiers 1 and 2: the local sandbox
// server runs its 'daytona' profile (restricted egress: only the fake Messages API is allowed, not the
// Worker). With AGENT_CREDENTIALS unset (gateway) a claude-code attempt fails at once, saying why and what
// to set; with AGENT_CREDENTIALS=direct the real claude CLI runs with the key in its process alone.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../src/durable/view.ts";
import { startFakeAnthropic } from "../../tools/fake-anthropic/server.ts";
import { startLocalSandbox } from "../support/processes.ts";
import { startService, type Service } from "../support/service.ts";

const KEY = "sk-test-direct-0123456789abcdef";
let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
let gateway: Service;
let direct: Service;

/** Only the fake model API is reachable from the service's sandboxes: the Worker is not. */
async function restrict(service: Service): Promise<void> {
  const res = await fetch(`${service.localSandboxUrl}/admin/behaviour`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ egress: "restricted", egressAllow: [new URL(fake.url).host] }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  await res.body?.cancel();
}

async function finished(service: Service, body: Record<string, unknown>, ms: number): Promise<RunView> {
  const res = await service.api("/api/runs", { method: "POST", json: body });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  const until = Date.now() + ms;
  for (;;) {
    const run = (await (await service.api(`/api/runs/${id}`)).json()) as RunView;
    if (run.status !== "running") return run;
    if (Date.now() > until) throw new Error(`run did not finish: ${JSON.stringify(run, null, 2)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  fake = await startFakeAnthropic({ port: 0 });
  const env = { LOCAL_SANDBOX_PROFILE: "daytona", ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: fake.url, POLL_INTERVAL_MS: "1000" };
  [gateway, direct] = await Promise.all([startService(env), startService({ ...env, AGENT_CREDENTIALS: "direct" })]);
  await Promise.all([restrict(gateway), restrict(direct)]);
}, 180_000);
afterAll(async () => {
  await Promise.all([gateway?.close(), direct?.close()]);
  await fake?.close();
});

describe("API-key mode from a sandbox that cannot reach the Worker", () => {
  it("fails a claude-code attempt at once under AGENT_CREDENTIALS=gateway, naming the probe, the tier and the setting", async () => {
    const started = Date.now();
    const run = await finished(gateway, { prompt: "Write hello.txt", agent: "claude-code", attempts: 1 }, 60_000);
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.status).toBe("failed");
    expect(a.error).toMatch(/cannot reach the service at PUBLIC_URL/);
    expect(a.error).toMatch(/Tiers 1 and 2/);
    expect(a.error).toMatch(/AGENT_CREDENTIALS=direct/);
    // At once: before any install (no job ever started), well inside a minute.
    const events = await (await gateway.api(`/api/runs/${run.id}/events`)).text();
    expect(events).not.toContain('"job.started"');
    expect(events).toContain('"reachesWorker":false');
    expect(Date.now() - started).toBeLessThan(45_000);
  });

  it("runs the real claude CLI under AGENT_CREDENTIALS=direct, with the key in its process, on no command line and in no file", { timeout: 600_000 }, async () => {
    const before = fake.requests.length;
    const run = await finished(direct, { prompt: "Write hello.txt", agent: "claude-code", attempts: 1, limits: { maxTurns: 3 } }, 540_000);
    const a = run.rounds[0]!.attempts[0]!;
    expect(a.error).toBeNull();
    expect(a.status).toBe("done");
    expect(a.diffStats).toMatchObject({ files: 1, additions: 1 });
    // The CLI called the fake itself, with the real key (no gateway between: no usage counted here).
    const calls = fake.requests.slice(before).filter((r) => r.path === "/v1/messages");
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls[0]!.headers["x-api-key"]).toBe(KEY);
    // The key is in no file of the sandbox (the job script has no export of it) and in no API answer.
    const agentJob = readFileSync(join(direct.sandboxRoot, "sandboxes", a.sandboxId!, "home", ".multishot", "jobs", "agent.sh"), "utf8");
    expect(agentJob).not.toContain("ANTHROPIC_API_KEY");
    // Every file the sandbox has, the local server's record of each session command's text included (a
    // session's commands can be listed by anything in the sandbox that reaches its toolbox daemon): the
    // key went up in an env file the runner deleted before the agent started.
    const found = spawnSync("grep", ["-rl", KEY, join(direct.sandboxRoot, "sandboxes", a.sandboxId!)], { encoding: "utf8" });
    expect(found.stdout).toBe("");
    expect(spawnSync("grep", ["-rl", KEY, direct.stateDir], { encoding: "utf8" }).stdout).toBe("");
    const events = await (await direct.api(`/api/runs/${run.id}/events`)).text();
    expect(JSON.stringify(run) + events).not.toContain(KEY);
    await direct.api(`/api/runs/${run.id}/cancel`, { method: "POST" });
  });

  it("npm start with a Daytona key says whether sandboxes reach PUBLIC_URL, and what follows in API-key mode", { timeout: 180_000 }, async () => {
    // A Daytona that is the local server as Tier 1 sees it, reached the way real Daytona is: by key and URL.
    const daytona = await startLocalSandbox(["--profile", "daytona"]);
    try {
      const service = await startService({ DAYTONA_API_KEY: "dtn_test", DAYTONA_API_URL: daytona.apiUrl, ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: fake.url });
      try {
        await expect.poll(() => service.output(), { timeout: 60_000, interval: 500 }).toMatch(/sandboxes cannot reach PUBLIC_URL \(http:\/\/127\.0\.0\.1:\d+; curl from a sandbox answered 000\)/);
        expect(service.output()).toMatch(/API-key mode with AGENT_CREDENTIALS=gateway: claude-code attempts will fail at once/);
        // The probe's sandbox is gone (marked, then destroyed).
        await expect
          .poll(async () => ((await (await fetch(`${daytona.url}/admin/stats`)).json()) as { live: number }).live, { timeout: 30_000, interval: 500 })
          .toBe(0);
      } finally {
        await service.close();
      }
    } finally {
      await daytona.stop();
    }
  });
});
