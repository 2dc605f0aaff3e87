// What the benches share: order statistics, starting a run and waiting on it through the API, and the
// machine's load (the bench machine is shared: a figure means little without it).
import { cpus, loadavg } from "node:os";
import type { RunView } from "../src/durable/view.ts";
import type { Service } from "../test/support/service.ts";

export const median = (xs: number[]) => quantile(xs, 0.5);

/** The nearest-rank quantile: a value that was measured, never an interpolation. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i]!;
}

export const goal = (met: boolean) => (met ? "met" : "NOT MET");

export async function startRun(svc: Service, body: unknown): Promise<string> {
  const res = await svc.api("/api/runs", { method: "POST", json: body });
  if (res.status !== 202) throw new Error(`POST /api/runs answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export async function waitForRun(svc: Service, id: string, done: (r: RunView) => boolean, timeoutMs = 120_000, everyMs = 50): Promise<RunView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = (await (await svc.api(`/api/runs/${id}`)).json()) as RunView;
    if (done(run)) return run;
    if (Date.now() > until) throw new Error(`run ${id} did not get there: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `uptime`'s load averages, with the core count to read them against. */
export function machineLoad(): string {
  return `load average ${loadavg().map((l) => l.toFixed(2)).join(", ")} on ${cpus().length} cores`;
}
