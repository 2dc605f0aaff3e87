// P5 cost while agents work silently: what a run costs per attempt-hour when nothing happens, against
// the service as `npm start` runs it (wrangler dev, the local sandbox server, the demo agent).
//   Daytona calls: the local sandbox server's call counters (control plane and toolbox), which count what
//     Daytona would be asked;
//   Durable Object wake-ups: the run's own counters (GET /api/admin/runs/:id/stats): its alarms, and the
//     requests that reach it (streams, runner reports).
// 4 attempts of the demo agent told to `[hang]` (it prints its init line, then nothing, for ever) are
// left alone for a window; the deltas over the window are extrapolated to one attempt-hour. The bench
// reads nothing of the run during the window, so every call and wake-up in it is the service's own.
// Then the run is cancelled, and every sandbox must be gone.
// Usage: npm run bench:cost [-- --seconds 120] [--poll-ms 15000]
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { startService, type Service } from "../test/support/service.ts";
import { goal, machineLoad, startRun, waitForRun } from "./support.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "120" }, "poll-ms": { type: "string", default: "15000" } } });
const SECONDS = Number(values.seconds);
/** The Worker's default POLL_INTERVAL_MS (src/durable/retry.ts), set explicitly so the figure names it. */
const POLL_MS = Number(values["poll-ms"]);
const ATTEMPTS = 4;
/**
 * After the last agent starts, before the window opens: its init line is reported, its first view pushed,
 * and its job's first polls are over (they come 1, 2, 4, 8 s after its start, then every POLL_INTERVAL_MS):
 * the window measures an idle agent's steady cost.
 */
const SETTLE_MS = POLL_MS + 3_000;

/**
 * The goals, per attempt-hour of an idle agent. While an agent is silent the only work there is to do is
 * the safety-net poll of its session command, every POLL_INTERVAL_MS, and a window of W seconds holds at
 * most floor(W / poll) + 1 of one attempt's polls (the + 1 is the window's edges: 3600 / W per hour).
 * - Daytona: one call per poll, the one that reads the command's state; the sandbox itself needs none
 *   (the run's object keeps the SDK's Sandbox).
 * - Durable Object: one wake-up per poll at most (an alarm; polls due together may share one), and no
 *   request at all: a silent agent sends no reports and nobody watches the run.
 */
const pollGoal = (windowMs: number) => ((Math.floor(windowMs / POLL_MS) + 1) * 3_600_000) / windowMs;

interface SandboxStats {
  apiCalls: Record<string, number>;
  toolboxCalls: Record<string, number>;
  live: number;
}
interface WakeUps {
  alarms: number;
  requests: number;
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
/** Per-call counts that grew between two readings, e.g. `GET /process/session/:sid/command/:cid 32`. */
function grown(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, n]) => [k, n - (before[k] ?? 0)]).filter(([, d]) => (d as number) > 0));
}

async function sandboxStats(svc: Service): Promise<SandboxStats> {
  return (await (await fetch(`${svc.localSandboxUrl}/admin/stats`)).json()) as SandboxStats;
}

async function wakeUps(svc: Service, adminToken: string, runId: string): Promise<WakeUps> {
  const res = await svc.api(`/api/admin/runs/${runId}/stats`, { key: adminToken });
  if (res.status !== 200) throw new Error(`GET /api/admin/runs/${runId}/stats answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as WakeUps;
}

async function main() {
  const adminToken = randomBytes(16).toString("hex");
  const svc = await startService({ LOCAL_SANDBOX_PROFILE: "lenient", ADMIN_TOKEN: adminToken, POLL_INTERVAL_MS: String(POLL_MS) });
  try {
    if (!svc.localSandboxUrl) throw new Error("the service runs without the local sandbox server: nothing to count calls with");
    console.log(`service at ${svc.url}; POLL_INTERVAL_MS ${POLL_MS}; window ${SECONDS} s; ${ATTEMPTS} attempts; ${machineLoad()}`);

    const id = await startRun(svc, {
      prompt: "stay quiet [hang]",
      agent: "demo",
      attempts: ATTEMPTS,
      // The window must end well before the attempts' own deadline.
      limits: { attemptMinutes: Math.max(30, Math.ceil(SECONDS / 60) + 10) },
    });
    await waitForRun(svc, id, (r) => r.rounds[0]!.attempts.every((a) => a.status === "running_agent"), 180_000, 200);
    await new Promise((r) => setTimeout(r, SETTLE_MS));

    const sandboxesBefore = await sandboxStats(svc);
    const wakeUpsBefore = await wakeUps(svc, adminToken, id);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const sandboxesAfter = await sandboxStats(svc);
    const wakeUpsAfter = await wakeUps(svc, adminToken, id);
    const windowMs = Date.now() - t0;

    // Only a window in which every agent worked throughout counts.
    const run = await waitForRun(svc, id, () => true);
    const statuses = run.rounds[0]!.attempts.map((a) => a.status);
    if (statuses.some((s) => s !== "running_agent")) throw new Error(`an attempt left running_agent during the window: ${statuses.join(", ")}`);

    const attemptHours = (ATTEMPTS * windowMs) / 3_600_000;
    const api = grown(sandboxesBefore.apiCalls, sandboxesAfter.apiCalls);
    const toolbox = grown(sandboxesBefore.toolboxCalls, sandboxesAfter.toolboxCalls);
    const daytonaCalls = sum(api) + sum(toolbox);
    const alarms = wakeUpsAfter.alarms - wakeUpsBefore.alarms;
    const requests = wakeUpsAfter.requests - wakeUpsBefore.requests;
    const perHour = (n: number) => n / attemptHours;
    const callGoal = pollGoal(windowMs);
    console.log(`window ${(windowMs / 1000).toFixed(1)} s x ${ATTEMPTS} attempts = ${attemptHours.toFixed(4)} attempt-hours; ${machineLoad()}`);
    console.log(`Daytona control plane calls: ${sum(api)} ${JSON.stringify(api)}`);
    console.log(`Daytona toolbox calls: ${sum(toolbox)} ${JSON.stringify(toolbox)}`);
    console.log(`Durable Object wake-ups: ${alarms} alarms, ${requests} requests`);

    // Cancelling gives every sandbox back.
    const cancelledAt = Date.now();
    await svc.api(`/api/runs/${id}/cancel`, { method: "POST" });
    let live = (await sandboxStats(svc)).live;
    while (live > 0 && Date.now() - cancelledAt < 60_000) {
      await new Promise((r) => setTimeout(r, 200));
      live = (await sandboxStats(svc)).live;
    }
    console.log(`live sandboxes ${(Date.now() - cancelledAt) / 1000} s after the cancel: ${live}`);

    console.log("");
    console.log(`P5 live sandboxes after cancelling the run: ${live} (goal 0: ${goal(live === 0)})`);
    console.log(
      `P5 Daytona calls per attempt-hour, idle agent: ${perHour(daytonaCalls).toFixed(1)} (control plane ${perHour(sum(api)).toFixed(1)}, ` +
        `toolbox ${perHour(sum(toolbox)).toFixed(1)}; POLL_INTERVAL_MS ${POLL_MS}; goal <= 1 call per poll, ${callGoal.toFixed(0)}: ` +
        `${goal(perHour(daytonaCalls) <= callGoal)})`,
    );
    console.log(
      `P5 Durable Object wake-ups per attempt-hour, idle agent: ${perHour(alarms + requests).toFixed(1)} (alarms ${perHour(alarms).toFixed(1)}, ` +
        `requests ${perHour(requests).toFixed(1)}; POLL_INTERVAL_MS ${POLL_MS}; goal <= 1 per poll, ${callGoal.toFixed(0)}: ` +
        `${goal(perHour(alarms + requests) <= callGoal)})`,
    );
  } finally {
    await svc.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
