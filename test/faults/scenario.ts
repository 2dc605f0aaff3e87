// One scenario of the fault suite: every case's runs started side by side (each case under an account of
// its own, so the local sandbox server's faults can be scoped to that case's sandboxes by their
// `multishot-account` label), each run watched until it settles, cancelled at once (so finished
// attempts give their sandboxes back), and cleaned up; then everything the checks need is read back:
// each run as its owner sees it, its event log, D1's rows, and every sandbox the local server ever
// made with the time it was billed.
import type { RunView } from "../../src/durable/view.ts";
import {
  type Account,
  type AdminView,
  type RunEvent,
  api,
  createAccount,
  d1Attempts,
  readRun,
  runEvents,
  runOfPath,
  sandboxAdmin,
  settled,
  sleep,
  startPump,
  startRun,
} from "./harness.ts";

export type Phase = "cases" | "load";

export interface RunRecord {
  id: string;
  caseName: string;
  /** the run's number within its case */
  index: number;
  startedAt: number;
  settledAt: number | null;
  cancelledAt: number | null;
  /** the run's status and error when it settled, before the scenario's cancel gave its sandboxes back */
  settledAs: { status: string; error: string | null } | null;
  /** what a case's driver saw while the run went (evictions, a stale D1, kills, ...) */
  notes: Record<string, unknown>;
  view: RunView | null;
  events: RunEvent[];
}

export interface Ctx {
  phase: Phase;
  account: Account;
  /** runs of this case so far */
  runs: RunRecord[];
  /** what a case's arm/disarm recorded (faults left unfired, ...) */
  notes: Record<string, unknown>;
}

/** What a driver may wait for. */
export interface RunHooks {
  isSettled(): boolean;
  /** resolves once the run is cancelled (after it settled): its sandboxes are being given back */
  cancelled: Promise<void>;
}

export interface FaultCase {
  name: string;
  /** the words for what this case covers */
  covers: string;
  runs: Record<Phase, number>;
  /** the run request (the demo agent is added) */
  request(phase: Phase, index: number): Record<string, unknown>;
  /** the runner's reports for this case's runs are reset on the way: the ingest URL is unreachable */
  pushLost?: boolean;
  /** before any run starts: scoped faults, D1 triggers */
  arm?(ctx: Ctx): Promise<void>;
  /** beside each run, from its start until it is cancelled: kills, evictions, D1 watches */
  drive?(ctx: Ctx, run: RunRecord, hooks: RunHooks): Promise<void>;
  /** after every run of the scenario is over and cleaned up */
  disarm?(ctx: Ctx): Promise<void>;
  /** the right outcome of one run (expect(...) inside) */
  checkRun(ctx: Ctx, run: RunRecord): Promise<void> | void;
  /** the right outcome across the case's runs */
  checkCase?(ctx: Ctx): Promise<void> | void;
  /**
   * Billed time per attempt beyond `1.05 x` the agent's working time that this case costs by design,
   * in ms, on top of the scenario's fixed allowance (see the billing check), with the reason next to
   * its number in the case.
   */
  extraAllowanceMs?(phase: Phase): number;
}

export interface Scenario {
  phase: Phase;
  cases: FaultCase[];
  ctx: Map<string, Ctx>;
  runs: RunRecord[];
  admin: AdminView;
  /** ms from the first start until every run settled, and until every sandbox was gone */
  settledMs: number;
  cleanMs: number;
  pump: { forwarded: number; dropped: number };
}

export interface ScenarioOptions {
  /** between one run's start and the next (0: all at once) */
  staggerMs: number;
  /** for every run to settle */
  settleTimeoutMs: number;
  /** how often each run is read while it goes (each read is a request to the Worker and its object) */
  watchEveryMs: number;
  log?: (line: string) => void;
}

export async function runScenario(phase: Phase, cases: FaultCase[], opts: ScenarioOptions): Promise<Scenario> {
  const log = opts.log ?? ((line: string) => console.log(`[faults:${phase}] ${line}`));
  const ctx = new Map<string, Ctx>();
  for (const c of cases) ctx.set(c.name, { phase, account: await createAccount(`faults ${phase} ${c.name}`), runs: [], notes: {} });
  for (const c of cases) await c.arm?.(ctx.get(c.name)!);

  // Runner reports: forwarded to the Worker, or reset for the cases whose ingest URL is unreachable.
  const caseOfRun = new Map<string, FaultCase>();
  const pump = startPump(({ url }) => {
    const runId = runOfPath(url);
    const c = runId ? caseOfRun.get(runId) : undefined;
    if (!c) return "wait";
    return c.pushLost ? "drop" : "forward";
  });

  const t0 = Date.now();
  const plan = cases.flatMap((c) => Array.from({ length: c.runs[phase] }, (_, index) => ({ c, index })));
  // Interleaved, so that a stagger spreads every case over the whole start-up.
  plan.sort((a, b) => a.index - b.index);
  const all: RunRecord[] = [];
  const watchers = plan.map(async ({ c, index }, k) => {
    if (opts.staggerMs) await sleep(k * opts.staggerMs);
    const cx = ctx.get(c.name)!;
    const id = await startRun(cx.account, { ...c.request(phase, index) });
    caseOfRun.set(id, c);
    const rec: RunRecord = { id, caseName: c.name, index, startedAt: Date.now(), settledAt: null, cancelledAt: null, settledAs: null, notes: {}, view: null, events: [] };
    cx.runs.push(rec);
    all.push(rec);
    let isSettled = false;
    let markCancelled!: () => void;
    const cancelled = new Promise<void>((r) => (markCancelled = r));
    const driving = (c.drive?.(cx, rec, { isSettled: () => isSettled, cancelled }) ?? Promise.resolve()).catch((err: unknown) => {
      rec.notes.driveError = String(err instanceof Error ? err.stack : err);
    });
    const until = Date.now() + opts.settleTimeoutMs;
    let run: RunView | null = null;
    for (;;) {
      run = await readRun(cx.account, id);
      if (settled(run)) break;
      if (Date.now() > until) {
        rec.notes.timedOut = run ? `still ${run.status}: ${run.rounds[0]?.attempts.map((a) => a.status).join(", ")}` : "unknown to the API";
        break;
      }
      await sleep(opts.watchEveryMs);
    }
    isSettled = true;
    rec.settledAt = Date.now();
    if (run) rec.settledAs = { status: run.status, error: run.error };
    // Finished attempts keep their sandboxes for a winner pick; nobody picks here: give them back now.
    const res = await api(`/api/runs/${id}/cancel`, cx.account.key, { method: "POST" });
    await res.body?.cancel();
    rec.cancelledAt = Date.now();
    markCancelled();
    await driving;
  });
  await Promise.all(watchers);
  const settledMs = Date.now() - t0;
  log(`${all.length} runs settled ${(settledMs / 1000).toFixed(1)} s after the first start`);

  // Cleanup: every sandbox of these runs deleted (the engine deletes them; nothing here does).
  const ours = new Set(all.map((r) => r.id));
  let admin = await sandboxAdmin();
  for (const until = Date.now() + 60_000; Date.now() < until; ) {
    if (!admin.sandboxes.some((s) => ours.has(s.labels["multishot-run"] ?? ""))) break;
    await sleep(250);
    admin = await sandboxAdmin();
  }
  const cleanMs = Date.now() - t0;
  const pumped = await pump.stop();
  for (const c of cases) await c.disarm?.(ctx.get(c.name)!);

  for (const rec of all) {
    const cx = ctx.get(rec.caseName)!;
    rec.view = await readRun(cx.account, rec.id);
    rec.events = await runEvents(cx.account, rec.id);
  }
  admin = await sandboxAdmin();
  log(`clean ${(cleanMs / 1000).toFixed(1)} s after the first start; reports forwarded ${pumped.forwarded}, dropped ${pumped.dropped}`);
  return { phase, cases, ctx, runs: all, admin, settledMs, cleanMs, pump: pumped };
}

/** D1's attempt statuses of a run (for the D1 cases' drivers). */
export async function d1Statuses(runId: string): Promise<string[]> {
  return (await d1Attempts(runId)).map((r) => r.status);
}
