#!/usr/bin/env node
// multishot's job runner, copied into every sandbox. It runs one job script (install, seed, agent,
// collect) in its own process group, keeps its output in files beside it, streams the agent's
// stdout lines to the Worker's signed ingest URL, and reports the exit code there at the end.
// Reports are best effort: the Worker also polls the session command, so a lost report only costs time.
//
// usage: node runner.mjs <jobsDir> <job> <try> <reportUrl|->
import { spawn } from "node:child_process";
import { appendFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [jobsDir, job, jobTry, reportUrl] = process.argv.slice(2);
if (!jobsDir || !job || !jobTry || !reportUrl) {
  console.error("usage: runner.mjs <jobsDir> <job> <try> <reportUrl|->");
  process.exit(2);
}
const stream = job === "agent";
const file = (ext) => join(jobsDir, `${job}.${ext}`);
for (const ext of ["out", "err"]) writeFileSync(file(ext), "");

// The agent's own environment (its credential or gateway URL) comes in a file the Worker uploaded just
// before this job: read, then deleted before the agent starts, so no code the agent runs finds it on disk
// and no later job (collect, verify) sees it at all.
let agentEnv = {};
if (stream) {
  const envFile = file("env.json");
  try {
    agentEnv = JSON.parse(readFileSync(envFile, "utf8"));
  } catch (err) {
    if (err.code !== "ENOENT") console.error(`runner: the agent's environment could not be read: ${err.message}`);
  }
  rmSync(envFile, { force: true });
}

const child = spawn("bash", [file("sh")], { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...agentEnv } });
writeFileSync(file("pid"), String(child.pid));

// Stop the whole job, not only bash, when the runner is told to stop.
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(sig, () => {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
    setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }, 3000).unref();
  });
}

const MAX_LINE = 60 * 1024;
const MAX_BATCH_BYTES = 600 * 1024;
let pending = [];
let pendingBytes = 0;
/** Non-empty stdout lines so far, and the number of the first one waiting to be sent. */
let lineNo = 0;
let pendingFirst = 0;
let partial = "";
let seq = 0;
let sending = Promise.resolve();

async function post(body, tries) {
  if (reportUrl === "-") return;
  for (let i = 0; i < tries; i++) {
    try {
      const res = await fetch(reportUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.ok || (res.status >= 400 && res.status < 500)) return;
    } catch {}
    if (i < tries - 1) await new Promise((r) => setTimeout(r, 200 * 2 ** i));
  }
}

function flush() {
  if (pending.length === 0) return sending;
  const lines = pending;
  pending = [];
  pendingBytes = 0;
  const body = { job, try: Number(jobTry), kind: "output", seq: seq++, first: pendingFirst, lines };
  sending = sending.then(() => post(body, 2));
  return sending;
}

const timer = stream ? setInterval(flush, 250) : null;

child.stdout.on("data", (chunk) => {
  appendFileSync(file("out"), chunk);
  process.stdout.write(chunk);
  if (!stream) return;
  const text = partial + chunk.toString("utf8");
  const lines = text.split("\n");
  partial = lines.pop() ?? "";
  for (const line of lines) {
    if (!line.trim()) continue;
    if (pending.length === 0) pendingFirst = lineNo;
    lineNo++;
    // An over-long line is not stream-json the Worker could use (the full log stays in the sandbox):
    // an empty placeholder keeps the numbering, which the Worker uses to record each line once.
    const kept = line.length > MAX_LINE ? "" : line;
    pendingBytes += kept.length;
    pending.push(kept);
    // Stay well under the ingest route's 1 MB body limit.
    if (pending.length >= 50 || pendingBytes >= MAX_BATCH_BYTES) flush();
  }
});
child.stderr.on("data", (chunk) => {
  appendFileSync(file("err"), chunk);
  process.stderr.write(chunk);
});

// What the job left running in the background ends with it: it holds the agent's environment, and while
// it keeps the output pipes open the job would never be seen to end.
child.on("exit", () => {
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {}
});

child.on("close", async (code, signal) => {
  const exitCode = code ?? 128 + (signal === "SIGKILL" ? 9 : 15);
  writeFileSync(file("exit"), String(exitCode));
  if (timer) clearInterval(timer);
  if (stream && partial.trim()) {
    if (pending.length === 0) pendingFirst = lineNo;
    lineNo++;
    pending.push(partial.length > MAX_LINE ? "" : partial);
  }
  // The exit line on stderr: a Worker following this command's logs learns the exit from it at once,
  // with no report and before the reports below are tried (src/durable/follow.ts reads it).
  process.stderr.write(`\nmultishot-exit:${job}:${jobTry}:${exitCode}\n`);
  await flush();
  // A few quick tries only: the job is not over for the Worker's poll until this process exits.
  await post({ job, try: Number(jobTry), kind: "exit", exitCode, signal: signal ?? null }, 4);
  process.exit(exitCode);
});
