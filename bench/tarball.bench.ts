// P3 tarball round trip, measured side by side in one run:
//   multishot: a winner's workspace of --mb megabytes (incompressible) packed in its sandbox into parts,
//              pulled by the Worker through the toolbox into R2, then pushed by the Worker from R2 through
//              the toolbox into the 4 sandboxes of the next round (no sandbox connects to the Worker);
//   raw:       the same bytes with plain `tar -cz | curl -T -` to a loopback sink, then 4 parallel
//              `curl | tar -xz` from it, on the same machine.
// It prints the throughput ratio (goal >= 0.5) and the Worker process's peak memory growth while the
// bytes move (goal < 64 MB), sampled from workerd's resident set.
// Usage: npm run bench:tarball [-- --mb 1024]
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { RunView } from "../src/durable/view.ts";
import { startService, type Service } from "../test/support/service.ts";

const { values } = parseArgs({ options: { mb: { type: "string", default: "1024" } } });
const MB = Number(values.mb);
const DOWNLOADS = 4;

async function waitFor(svc: Service, id: string, done: (r: RunView) => boolean): Promise<RunView> {
  for (;;) {
    const r = (await (await svc.api(`/api/runs/${id}`)).json()) as RunView;
    if (done(r)) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Resident memory of every workerd process, in bytes, sampled until stopped; returns the peak growth. */
function sampleWorkerdMemory(): () => { baseline: number; peak: number } {
  const pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && safeRead(`/proc/${p}/cmdline`).includes("workerd"));
  const rss = () => pids.reduce((sum, p) => sum + Number(/VmRSS:\s+(\d+)/.exec(safeRead(`/proc/${p}/status`))?.[1] ?? 0) * 1024, 0);
  const baseline = rss();
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, rss())), 50);
  return () => {
    clearInterval(timer);
    return { baseline, peak };
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function sh(cmd: string): Promise<void> {
  return new Promise((ok, fail) => {
    const p = spawn("bash", ["-c", cmd], { stdio: ["ignore", "ignore", "inherit"] });
    p.on("exit", (code) => (code === 0 ? ok() : fail(new Error(`${cmd} exited ${code}`))));
  });
}

/** The raw baseline: tar|curl up to a loopback sink that writes to disk, then 4 parallel curl|tar down. */
async function raw(workspace: string): Promise<{ upMs: number; downMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), "multishot-raw-"));
  const file = join(dir, "upload.tar.gz");
  const sink = createServer((req, res) => {
    if (req.method === "PUT") {
      req.pipe(createWriteStream(file)).on("finish", () => res.end("ok"));
    } else {
      res.setHeader("content-length", String(statSync(file).size));
      createReadStream(file).pipe(res);
    }
  });
  await new Promise<void>((ok) => sink.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${(sink.address() as { port: number }).port}/x`;
  try {
    let t = Date.now();
    await sh(`tar -cz -C '${workspace}' . | curl -fsS -T - '${url}' > /dev/null`);
    const upMs = Date.now() - t;
    t = Date.now();
    await Promise.all(
      Array.from({ length: DOWNLOADS }, (_, i) => {
        const out = join(dir, `x${i}`);
        mkdirSync(out);
        return sh(`curl -fsS '${url}' | tar -xz -C '${out}'`);
      }),
    );
    return { upMs, downMs: Date.now() - t };
  } finally {
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const svc = await startService({ LOCAL_SANDBOX_PROFILE: "lenient", POLL_INTERVAL_MS: "1000" });
  try {
    const create = await svc.api("/api/runs", { method: "POST", json: { prompt: "base [add-only]", agent: "demo", attempts: 1 } });
    const { id } = (await create.json()) as { id: string };
    const r1 = await waitFor(svc, id, (r) => r.status !== "running");
    const ws = join(svc.sandboxRoot, "sandboxes", r1.rounds[0]!.attempts[0]!.sandboxId!, "home", "workspace");
    const files = Math.max(1, Math.ceil(MB / 128));
    for (let i = 0; i < files; i++) {
      execFileSync("bash", ["-c", `head -c ${Math.ceil(MB / files)}M /dev/urandom > '${ws}/blob-${i}.bin'`]);
    }
    console.log(`workspace of ${MB} MB (incompressible) in ${files} files; service at ${svc.url}`);

    const rawTimes = await raw(ws);

    const stopSampling = sampleWorkerdMemory();
    let t = Date.now();
    await svc.api(`/api/runs/${id}/rounds/1/winner`, { method: "POST", json: { attempt: 1 } });
    const picked = await waitFor(svc, id, (r) => r.rounds[0]!.winner?.status === "stored" || r.rounds[0]!.winner?.status === "failed");
    if (picked.rounds[0]!.winner!.status !== "stored") throw new Error(`packing failed: ${picked.rounds[0]!.winner!.error}`);
    const upMs = Date.now() - t;
    t = Date.now();
    await svc.api(`/api/runs/${id}/rounds`, { method: "POST", json: { prompt: "next [add-only]", attempts: DOWNLOADS } });
    const r2 = await waitFor(svc, id, (r) => r.rounds.length === 2 && r.rounds[1]!.attempts.every((a) => a.timestamps.running_agent || a.status === "failed"));
    const failed = r2.rounds[1]!.attempts.filter((a) => a.status === "failed");
    if (failed.length) throw new Error(`seeding failed: ${failed.map((a) => a.error).join("; ")}`);
    // From the round's start to the last attempt seeded, less the time before the first download began.
    const seedStart = Math.min(...r2.rounds[1]!.attempts.map((a) => a.timestamps.seeding_workspace!));
    const seedEnd = Math.max(...r2.rounds[1]!.attempts.map((a) => a.timestamps.running_agent!));
    const downMs = seedEnd - seedStart;
    const totalRoundTrip = Date.now() - t;
    const memory = stopSampling();

    // The local R2 emulation's own floor, for reference: the same tarball fetched 4 times at once through
    // the Worker's API by curl, no sandbox involved (R2 get -> Response, nothing of multishot's in between).
    const stopFloor = sampleWorkerdMemory();
    t = Date.now();
    await Promise.all(
      Array.from({ length: DOWNLOADS }, () =>
        sh(`curl -fsS -o /dev/null -H 'authorization: Bearer ${svc.key}' '${svc.url}/api/runs/${id}/rounds/1/winner.tar.gz'`),
      ),
    );
    const floorMs = Date.now() - t;
    const floorMemory = stopFloor();
    await svc.api(`/api/runs/${id}/cancel`, { method: "POST" });

    const bytes = picked.rounds[0]!.winner!.tarball!.size;
    const mbps = (b: number, ms: number) => (b / 1e6 / (ms / 1000)).toFixed(1);
    const multishotMs = upMs + downMs;
    const rawMs = rawTimes.upMs + rawTimes.downMs;
    const ratio = rawMs / multishotMs;
    const growthMb = (memory.peak - memory.baseline) / 1024 / 1024;
    console.log(`raw tar|curl:  up ${rawTimes.upMs} ms (${mbps(bytes, rawTimes.upMs)} MB/s), ${DOWNLOADS} down ${rawTimes.downMs} ms (${mbps(bytes * DOWNLOADS, rawTimes.downMs)} MB/s)`);
    console.log(`multishot:     up ${upMs} ms (${mbps(bytes, upMs)} MB/s, pick to stored), ${DOWNLOADS} down ${downMs} ms (${mbps(bytes * DOWNLOADS, downMs)} MB/s, seeding), round start to seeded ${totalRoundTrip} ms`);
    console.log(`workerd resident memory: ${(memory.baseline / 1048576).toFixed(0)} MB before, peak ${(memory.peak / 1048576).toFixed(0)} MB`);
    console.log(
      `local R2 emulation floor: ${DOWNLOADS} plain downloads through the Worker ${floorMs} ms (${mbps(bytes * DOWNLOADS, floorMs)} MB/s), ` +
        `workerd memory growth ${((floorMemory.peak - floorMemory.baseline) / 1048576).toFixed(0)} MB`,
    );
    console.log("");
    console.log(`P3 tarball round trip throughput, multishot ÷ raw: ${ratio.toFixed(2)} (goal >= 0.5: ${ratio >= 0.5 ? "met" : "NOT MET"})`);
    console.log(`P3 Worker peak memory growth: ${growthMb.toFixed(1)} MB (goal < 64 MB: ${growthMb < 64 ? "met" : "NOT MET"})`);
  } finally {
    await svc.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
