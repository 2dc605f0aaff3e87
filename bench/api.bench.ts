// P4 API latency, measured side by side in one run against the service as `npm start` runs it
// (wrangler dev + the local sandbox server): `GET /api/runs/:id` of a finished 4-attempt demo run
// (API key check, D1 ownership lookup, the run's Durable Object) against `GET /health`, a bare Hono
// route in the same Worker in the same workerd (no I/O), each hammered by `wrk` with 200 connections.
// The two alternate (order flipped each round) so drift affects both alike; medians over the rounds.
// It prints p50 and p99 of each and their ratios (goal: both <= 3), and, as a cross-check that other
// processes on the machine disturb less, the CPU time the service's processes (workerd, wrangler, the
// local sandbox server) spent per request, from /proc.
// wrk: Debian's `wrk` package (`apt-get install -y wrk`), or WRK=/path/to/wrk.
// Usage: npm run bench:api [-- --rounds 3 --seconds 10 --connections 200]
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import type { RunView } from "../src/durable/view.ts";
import { startService, type Service } from "../test/support/service.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "10" },
    connections: { type: "string", default: "200" },
    threads: { type: "string", default: "1" },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
// One wrk thread drives 200 connections with epoll and leaves the second core to workerd and wrangler.
const THREADS = Number(values.threads);
const WRK = process.env.WRK ?? "wrk";
// The route does three hops the bare route does not (key check and ownership in D1, the run's Durable
// Object): at most 3× the bare route's latency, at the median and in the tail.
const P50_GOAL = 3;
const P99_GOAL = 3;

// wrk's report as one JSON line (latencies in microseconds).
const REPORT_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"p50":%d,"p99":%d,"max":%d,"mean":%f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;

interface Sample {
  rps: number;
  p50: number; // ms
  p99: number; // ms
  max: number; // ms
  requests: number;
  errors: number; // socket errors, timeouts and non-2xx/3xx answers
  cpuMs: number; // CPU of the service's processes per request, NaN without /proc
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** CPU time (user + system, ms) of `root` and all its descendants, from /proc; NaN where there is none. */
function treeCpuMs(root: number): number {
  const procs = new Map<number, { ppid: number; ticks: number }>();
  try {
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      try {
        // Fields after the command name, which is in parentheses and may hold spaces: state ppid … utime(14) stime(15).
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        procs.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
      } catch {} // gone meanwhile
    }
  } catch {
    return NaN;
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) if (!tree.has(pid) && tree.has(p.ppid)) (tree.add(pid), (grew = true));
  }
  let ticks = 0;
  for (const pid of tree) ticks += procs.get(pid)?.ticks ?? 0;
  return procs.size ? ticks * 10 : NaN; // USER_HZ is 100 on Linux
}

async function wrk(url: string, headers: Record<string, string>, seconds: number, script: string, servicePid: number): Promise<Sample> {
  const args = ["-t", String(THREADS), "-c", String(CONNECTIONS), "-d", `${seconds}s`, "--timeout", "30s", "-s", script];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  args.push(url);
  const cpu0 = treeCpuMs(servicePid);
  const { stdout } = await promisify(execFile)(WRK, args, { maxBuffer: 1 << 20 });
  const cpu1 = treeCpuMs(servicePid);
  const line = /WRK_JSON (\{.*\})/.exec(stdout)?.[1];
  if (!line) throw new Error(`wrk printed no report:\n${stdout}`);
  const r = JSON.parse(line) as Record<string, number>;
  return {
    rps: r.requests! / (r.duration_us! / 1e6),
    p50: r.p50! / 1000,
    p99: r.p99! / 1000,
    max: r.max! / 1000,
    requests: r.requests!,
    errors: r.connect! + r.read! + r.write! + r.status! + r.timeout!,
    cpuMs: (cpu1 - cpu0) / r.requests!,
  };
}

async function main() {
  try {
    await promisify(execFile)(WRK, ["--version"]).catch((e: { stdout?: string }) => {
      if (!/wrk/.test(e.stdout ?? "")) throw e; // wrk --version exits 1 after printing its version
    });
  } catch {
    throw new Error(`${WRK} not found: apt-get install -y wrk (or set WRK)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "multishot-api-bench-"));
  const script = join(dir, "report.lua");
  writeFileSync(script, REPORT_LUA);
  const svc: Service = await startService({ LOCAL_SANDBOX_PROFILE: "lenient" });
  try {
    const res = await svc.api("/api/runs", { method: "POST", json: { prompt: "api bench", agent: "demo", attempts: 4 } });
    if (res.status !== 202) throw new Error(`POST /api/runs answered ${res.status}: ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    const until = Date.now() + 120_000;
    let run: RunView;
    for (;;) {
      run = (await (await svc.api(`/api/runs/${id}`)).json()) as RunView;
      if (run.status !== "running") break;
      if (Date.now() > until) throw new Error(`run ${id} did not finish: ${JSON.stringify(run)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const body = JSON.stringify(run);
    console.log(
      `service at ${svc.url}; run ${id} ${run.status}, ${run.rounds[0]!.attempts.length} attempts, ` +
        `GET /api/runs/:id is ${body.length} bytes of JSON; wrk ${THREADS} thread(s), ${CONNECTIONS} connections, ` +
        `${ROUNDS} rounds of ${SECONDS} s each; load average ${loadavg()[0]!.toFixed(2)}`,
    );

    const targets = {
      api: { label: "GET /api/runs/:id", url: `${svc.url}/api/runs/${id}`, headers: { authorization: `Bearer ${svc.key}` } },
      health: { label: "GET /health      ", url: `${svc.url}/health`, headers: {} },
    };
    // Warm-up: JIT, connection pools, the Durable Object and D1 awake.
    const pid = svc.child.pid!;
    await wrk(targets.api.url, targets.api.headers, 3, script, pid);
    await wrk(targets.health.url, targets.health.headers, 3, script, pid);

    const samples: Record<keyof typeof targets, Sample[]> = { api: [], health: [] };
    for (let i = 0; i < ROUNDS; i++) {
      const order: (keyof typeof targets)[] = i % 2 === 0 ? ["api", "health"] : ["health", "api"];
      for (const k of order) {
        const t = targets[k];
        const s = await wrk(t.url, t.headers, SECONDS, script, pid);
        samples[k].push(s);
        console.log(
          `round ${i + 1} ${t.label}  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  max ${s.max.toFixed(0)} ms  ` +
            `${s.rps.toFixed(0)} req/s  ${s.cpuMs.toFixed(1)} ms CPU/req  (${s.requests} requests, ${s.errors} errors)`,
        );
      }
    }

    const summary = (k: keyof typeof targets) => ({
      p50: median(samples[k].map((s) => s.p50)),
      p99: median(samples[k].map((s) => s.p99)),
      rps: median(samples[k].map((s) => s.rps)),
      errors: samples[k].reduce((n, s) => n + s.errors, 0),
      cpuMs: median(samples[k].map((s) => s.cpuMs)),
    });
    const api = summary("api");
    const health = summary("health");
    const p50Ratio = api.p50 / health.p50;
    const p99Ratio = api.p99 / health.p99;
    const rpsRatio = api.rps / health.rps;
    console.log(`load average at the end ${loadavg()[0]!.toFixed(2)} (this machine's other processes share its cores)`);
    console.log("");
    for (const [k, s] of [["api", api], ["health", health]] as const) {
      console.log(
        `${targets[k].label}  median over ${ROUNDS} rounds: p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, ` +
          `${s.rps.toFixed(0)} req/s, ${s.cpuMs.toFixed(1)} ms CPU per request, ${s.errors} errors`,
      );
    }
    if (api.errors + health.errors > 0) console.log(`ERRORS: ${api.errors + health.errors} failed requests (see the rounds above)`);
    console.log(`P4 CPU per request ratio (GET /api/runs/:id ÷ GET /health): ${(api.cpuMs / health.cpuMs).toFixed(2)}`);
    console.log(`P4 throughput ratio (GET /api/runs/:id ÷ GET /health, req/s): ${rpsRatio.toFixed(3)}`);
    const ok = (ratio: number, goal: number) => (ratio <= goal && api.errors === 0 ? "met" : "NOT MET");
    console.log(
      `P4 p99 ratio (GET /api/runs/:id ÷ GET /health, ${CONNECTIONS} connections): ${p99Ratio.toFixed(2)} ` +
        `(goal <= ${P99_GOAL}: ${ok(p99Ratio, P99_GOAL)})`,
    );
    console.log(
      `P4 p50 ratio (GET /api/runs/:id ÷ GET /health, ${CONNECTIONS} connections): ${p50Ratio.toFixed(2)} ` +
        `(goal <= ${P50_GOAL}: ${ok(p50Ratio, P50_GOAL)})`,
    );
  } finally {
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
