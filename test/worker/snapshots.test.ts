// Runs whose sandboxes start from a snapshot (agents preinstalled), or are sized by resources: the engine
// against the local sandbox server's snapshot API (built there by running the image's commands).
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { AGENTS } from "../../src/agents/index.ts";
import { api, getRun, runEvents, startRun, waitForRun } from "./helpers.ts";

const SANDBOX_API = () => `${env.LOCAL_SANDBOX_URL}/api`;
const auth = { authorization: "Bearer test", "content-type": "application/json" };

interface SnapshotRecord {
  id: string;
  name: string;
  state: string;
  errorReason: string | null;
}

/** A snapshot built as `npm run snapshot` builds it (FROM, then one RUN per command), waited for. */
async function buildSnapshot(name: string, commands: string[]): Promise<SnapshotRecord> {
  const dockerfileContent = `FROM daytonaio/sandbox:0.5.0-slim\n${commands.map((c) => `RUN ${c}\n`).join("")}`;
  const res = await fetch(`${SANDBOX_API()}/snapshots`, { method: "POST", headers: auth, body: JSON.stringify({ name, buildInfo: { dockerfileContent } }) });
  expect(res.status, await res.clone().text()).toBeLessThan(300);
  for (const until = Date.now() + 60_000; Date.now() < until; ) {
    const s = (await (await fetch(`${SANDBOX_API()}/snapshots/${encodeURIComponent(name)}`, { headers: auth })).json()) as SnapshotRecord;
    if (s.state === "active" || s.state === "build_failed" || s.state === "error") return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`snapshot ${name} never finished building`);
}

async function sandboxRecord(id: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${SANDBOX_API()}/sandbox/${id}`, { headers: auth });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

const DEMO_SNAPSHOT = `demo-agents-${crypto.randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  const built = await buildSnapshot(DEMO_SNAPSHOT, AGENTS.demo.snapshotCommands());
  expect(built).toMatchObject({ state: "active", errorReason: null });
}, 90_000);

describe("a run's sandboxes", () => {
  it("start from a snapshot with the agent preinstalled: the install is skipped, and the attempt says how it got its agent", async () => {
    const id = await startRun({ prompt: "from a snapshot [add-only]", agent: "demo", attempts: 2, sandbox: { snapshot: DEMO_SNAPSHOT } });
    const run = await waitForRun(id, (r) => r.status !== "running", 60_000);
    expect(run.rounds[0]!.sandbox).toEqual({ snapshot: DEMO_SNAPSHOT });
    for (const a of run.rounds[0]!.attempts) {
      expect(a.status).toBe("done");
      expect(a.agentSetup).toMatchObject({ how: "preinstalled", version: AGENTS.demo.version, snapshot: DEMO_SNAPSHOT });
      expect(a.agentSetup!.text).toBe(`${AGENTS.demo.version} preinstalled in snapshot ${DEMO_SNAPSHOT}`);
      // Made from the snapshot, and the agent that ran was the snapshot's: no copy was installed.
      expect(await sandboxRecord(a.sandboxId!)).toMatchObject({ snapshot: DEMO_SNAPSHOT });
    }
    const setups = (await runEvents(id)).filter((e) => e.type === "attempt.agent_setup");
    expect(setups.map((e) => e.data.how)).toEqual(["preinstalled", "preinstalled"]);

    // A next round may choose otherwise: without the snapshot its sandboxes install the agent.
    expect((await api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 1 } })).status).toBe(202);
    await waitForRun(id, (r) => r.rounds[0]!.winner?.status === "stored", 60_000);
    const next = await api(`/api/runs/${id}/rounds`, { method: "POST", json: { prompt: "round two [add-only]", attempts: 1, sandbox: { resources: { cpu: 2, memory: 2 } } } });
    expect(next.status).toBe(202);
    const r2 = await waitForRun(id, (r) => r.rounds.length === 2 && r.rounds[1]!.status !== "running", 60_000);
    const [b] = r2.rounds[1]!.attempts;
    expect(b).toMatchObject({ status: "done", agentSetup: { how: "installed", snapshot: null } });
    expect(b!.agentSetup!.text).toMatch(/^1\.0\.0 installed in \d+\.\d s$/);
    // Sized as asked, so made from the image (Daytona takes resources only with one).
    expect(await sandboxRecord(b!.sandboxId!)).toMatchObject({ cpu: 2, memory: 2 });
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  }, 120_000);

  it("installs the agent when no snapshot has it, and says how long that took", async () => {
    const id = await startRun({ prompt: "installed", agent: "demo", attempts: 1 });
    const run = await waitForRun(id, (r) => r.status !== "running", 60_000);
    const [a] = run.rounds[0]!.attempts;
    expect(a).toMatchObject({ status: "done", agentSetup: { how: "installed", version: AGENTS.demo.version, snapshot: null } });
    expect(a!.agentSetup!.seconds).toBeGreaterThanOrEqual(0);
    await api(`/api/runs/${id}/cancel`, { method: "POST" });
  }, 60_000);

  it("fail at once, with the snapshot's name and state, when it does not exist or its build failed", async () => {
    const broken = `broken-${crypto.randomUUID().slice(0, 8)}`;
    const built = await buildSnapshot(broken, ["echo about to fail && exit 3"]);
    expect(built.state).toBe("build_failed");
    for (const [snapshot, reason] of [
      ["no-such-snapshot", /^snapshot "no-such-snapshot" does not exist: build it with `npm run snapshot`/],
      [broken, new RegExp(`^snapshot "${broken}" is build_failed \\(.+\\): a sandbox needs an active snapshot`)],
    ] as const) {
      const started = Date.now();
      const id = await startRun({ prompt: "needs a snapshot", agent: "demo", attempts: 2, sandbox: { snapshot } });
      const run = await waitForRun(id, (r) => r.status !== "running", 30_000);
      expect(run.status).toBe("failed");
      for (const a of run.rounds[0]!.attempts) {
        expect(a).toMatchObject({ status: "failed", retries: 0, sandboxId: null });
        expect(a.error).toMatch(reason);
      }
      // At once: no retry with backoff, no waiting for a deadline.
      expect(Date.now() - started).toBeLessThan(15_000);
      expect((await getRun(id)).rounds[0]!.sandbox).toEqual({ snapshot });
    }
  }, 90_000);
});
