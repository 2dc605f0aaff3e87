// Snapshot and start benchmarks, side by side in one run against the service as `npm start` runs it
// (wrangler dev + the local sandbox server):
//   S0 fan-out: from `POST /api/runs` (4 demo attempts) to the last of the 4 create calls reaching the
//      sandbox server, median and p95 (goal: median <= 50 ms).
//   S1 the real Claude Code CLI, 4 attempts, from `POST` until all 4 are `running_agent`: installed by its
//      recipe (install.sh fails offline, then npm from the registry, through the machine's npm cache as
//      the local server shares it) against started from a snapshot that `npm run snapshot`'s recipe built
//      with it preinstalled; the ratio (goal: snapshot <= a tenth of install).
//   S2 the share of billed sandbox time that is not the agent's (create, install, seeding, collect), from
//      runs of the demo agent from a snapshot to `done`: billed time (the sandbox server's own meter, from
//      create to delete) minus the agent's running time, against a 5-minute agent (goal: <= 5 %).
// Usage: npm run bench:snapshot [-- --reps N (S0 and S2, default 10)] [--cc-reps N (S1, default 1)]
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { startFakeAnthropic } from "../tools/fake-anthropic/server.ts";
import { startService, type Service } from "../test/support/service.ts";
import { goal, machineLoad, median, quantile, startRun, waitForRun } from "./support.ts";

const { values } = parseArgs({ options: { reps: { type: "string", default: "10" }, "cc-reps": { type: "string", default: "1" } } });
const REPS = Number(values.reps);
const CC_REPS = Number(values["cc-reps"]);
const AGENT_S = 300;

interface AdminSandbox {
  id: string;
  labels: Record<string, string>;
  createdAt: string;
}

async function sandboxesOf(svc: Service, runId: string): Promise<AdminSandbox[]> {
  const all = (await (await fetch(`${svc.localSandboxUrl}/admin/sandboxes`)).json()) as { sandboxes: AdminSandbox[] };
  return all.sandboxes.filter((s) => s.labels["multishot-run"] === runId);
}

/** Until no sandbox is live or being destroyed on the service's sandbox server. */
async function idle(svc: Service): Promise<void> {
  for (const until = Date.now() + 30_000; Date.now() < until; ) {
    const all = (await (await fetch(`${svc.localSandboxUrl}/admin/sandboxes`)).json()) as { live: number; destroying: number };
    if (all.live === 0 && all.destroying === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the sandbox server never went idle");
}

async function deletedOf(svc: Service, runId: string): Promise<{ labels: Record<string, string>; runningMs: number }[]> {
  const all = (await (await fetch(`${svc.localSandboxUrl}/admin/sandboxes?deleted=true`)).json()) as {
    deletedSandboxes: { labels: Record<string, string>; runningMs: number }[];
  };
  return all.deletedSandboxes.filter((s) => s.labels["multishot-run"] === runId);
}

/** `npm run snapshot` against the service's local sandbox server; its wall time. */
async function buildSnapshot(svc: Service, name: string, agents: string): Promise<number> {
  const t0 = Date.now();
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, ["scripts/snapshot.ts", "--name", name, "--agents", agents], {
      env: { ...process.env, DAYTONA_API_KEY: "", DAYTONA_JWT_TOKEN: "", DAYTONA_API_URL: `${svc.localSandboxUrl}/api` },
      stdio: ["ignore", "inherit", "inherit"],
    });
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`npm run snapshot exited ${code}`))));
  });
  return Date.now() - t0;
}

async function cancel(svc: Service, id: string): Promise<void> {
  await svc.api(`/api/runs/${id}/cancel`, { method: "POST" });
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

console.log(`# snapshot bench, ${new Date().toISOString()}, ${machineLoad()}`);

// ---- S0 and S2: the demo agent
{
  const svc = await startService();
  try {
    const sent: number[] = [];
    const arrived: number[] = [];
    for (let i = 0; i < REPS; i++) {
      // The previous run's sandboxes are gone first: Daytona's quota counts a marked one until it is
      // destroyed, and a create refused for it waits 2 s (that is S0 under load, not fan-out).
      await idle(svc);
      const t0 = Date.now();
      const id = await startRun(svc, { prompt: "fan-out", agent: "demo", attempts: 4 });
      let made: AdminSandbox[] = [];
      for (const until = Date.now() + 30_000; made.length < 4 && Date.now() < until; ) {
        made = await sandboxesOf(svc, id);
        if (made.length < 4) await new Promise((r) => setTimeout(r, 5));
      }
      const run = (await (await svc.api(`/api/runs/${id}`)).json()) as { rounds: { attempts: { timestamps: Record<string, number> }[] }[] };
      // Sent: the attempt's `creating_sandbox` stamp, taken as its step calls Daytona's create.
      sent.push(Math.max(...run.rounds[0]!.attempts.map((a) => a.timestamps.creating_sandbox!)) - t0);
      arrived.push(Math.max(...made.map((s) => Date.parse(s.createdAt))) - t0);
      await cancel(svc, id);
    }
    const s0 = median(sent);
    console.log(
      `S0 POST -> 4 create calls sent: median ${s0} ms, p95 ${quantile(sent, 0.95)} ms (${sent.join(", ")}) -> goal <= 50 ms ${goal(s0 <= 50)}; ` +
        `made at the sandbox server: median ${median(arrived)} ms, p95 ${quantile(arrived, 0.95)} ms`,
    );

    const name = "bench-demo-snapshot";
    const built = await buildSnapshot(svc, name, "demo");
    const shares: number[] = [];
    const setups: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const id = await startRun(svc, { prompt: "setup share [add-only]", agent: "demo", attempts: 1, sandbox: { snapshot: name } });
      const run = await waitForRun(svc, id, (r) => r.status !== "running", 120_000);
      const a = run.rounds[0]!.attempts[0]!;
      if (a.status !== "done" || a.agentSetup?.how !== "preinstalled") throw new Error(`attempt not done from the snapshot: ${JSON.stringify(a)}`);
      await cancel(svc, id);
      let deleted: { runningMs: number }[] = [];
      for (const until = Date.now() + 30_000; deleted.length < 1 && Date.now() < until; ) {
        deleted = await deletedOf(svc, id);
        if (!deleted.length) await new Promise((r) => setTimeout(r, 100));
      }
      const agentMs = a.timestamps.collecting_result! - a.timestamps.running_agent!;
      const setupMs = deleted[0]!.runningMs - agentMs;
      setups.push(setupMs);
      shares.push(setupMs / (setupMs + AGENT_S * 1000));
    }
    const s2 = median(shares);
    console.log(
      `S2 billed time outside the agent, per attempt from a snapshot (built in ${fmt(built)}): median ${fmt(median(setups))}, p95 ${fmt(quantile(setups, 0.95))}; ` +
        `share of a ${AGENT_S / 60}-minute agent's sandbox time: median ${(s2 * 100).toFixed(2)} % -> goal <= 5 % ${goal(s2 <= 0.05)}`,
    );
  } finally {
    await svc.close();
  }
}

// ---- S1: the real Claude Code CLI, installed against preinstalled
{
  const fake = await startFakeAnthropic({ port: 0 });
  // Open egress, as claude-code.test.ts: the CLI reaches the fake model API through the gateway.
  const svc = await startService({ LOCAL_SANDBOX_PROFILE: "lenient", ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: "sk-bench-fake-0123456789" });
  try {
    const name = "bench-claude-code-snapshot";
    const built = await buildSnapshot(svc, name, "claude-code");
    const toRunning = async (sandbox: unknown): Promise<{ ms: number; setups: string[] }> => {
      const t0 = Date.now();
      const id = await startRun(svc, { prompt: "Write hello.txt", agent: "claude-code", attempts: 4, limits: { maxTurns: 3 }, ...(sandbox ? { sandbox } : {}) });
      const run = await waitForRun(svc, id, (r) => r.status !== "running" || r.rounds[0]!.attempts.every((a) => a.timestamps.running_agent !== undefined), 600_000, 100);
      const attempts = run.rounds[0]!.attempts;
      if (!attempts.every((a) => a.timestamps.running_agent !== undefined)) throw new Error(`not every agent ran: ${JSON.stringify(attempts.map((a) => a.error))}`);
      await cancel(svc, id);
      return { ms: Math.max(...attempts.map((a) => a.timestamps.running_agent!)) - t0, setups: attempts.map((a) => a.agentSetup?.text ?? "?") };
    };
    const installed: number[] = [];
    const preinstalled: number[] = [];
    let notes: string[] = [];
    for (let i = 0; i < CC_REPS; i++) {
      const inst = await toRunning(null);
      const snap = await toRunning({ snapshot: name });
      installed.push(inst.ms);
      preinstalled.push(snap.ms);
      notes = [...inst.setups.slice(0, 1), ...snap.setups.slice(0, 1)];
    }
    const ratio = median(preinstalled) / median(installed);
    console.log(
      `S1 claude-code, 4 attempts, POST -> all running_agent: installed ${fmt(median(installed))} (${notes[0]}), from the snapshot ${fmt(median(preinstalled))} (${notes[1]}); ` +
        `ratio ${ratio.toFixed(3)} -> goal <= 0.10 ${goal(ratio <= 0.1)} (snapshot built in ${fmt(built)})`,
    );
  } finally {
    await svc.close();
    await fake.close();
  }
}
