// The watchdog `npm start` leaves behind itself: when the start process is gone however it ended (a
// SIGKILL, an OOM kill, the terminal closing), it kills every process that carries the start's mark in
// its environment (MULTISHOT_START=<id>): wrangler and its workerd processes, and every sandbox process
// of the local sandbox server (which passes the mark on). On a clean stop it finds nothing left.
// Linux reads /proc; elsewhere it kills the process groups it was given.
// usage: node watchdog.mjs <parentPid> <mark> [pgid...]
import { readdirSync, readFileSync } from "node:fs";

const [parentArg, mark, ...groups] = process.argv.slice(2);
const parent = Number(parentArg);
const needle = Buffer.from(`MULTISHOT_START=${mark}\0`);

/**
 * Whether the start process still runs. Gone when this watchdog was handed to another parent (it was
 * spawned by the start), when the process is no more, or when it is a zombie its own parent has not
 * reaped yet (a busy parent can take a while: a zombie still answers kill(pid, 0)).
 */
const alive = (pid) => {
  if (process.ppid !== pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    if (/^\d+ \(.*\) Z/.test(stat)) return false;
  } catch {
    // No /proc (not Linux): kill(pid, 0) decides.
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
};

function marked() {
  let entries;
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const pids = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${e}/environ`);
      const at = env.indexOf(needle);
      if (at === 0 || (at > 0 && env[at - 1] === 0)) pids.push(Number(e));
    } catch {
      // gone, or not ours
    }
  }
  return pids;
}

function killAll(signal) {
  for (const g of groups) {
    try {
      process.kill(-Number(g), signal);
    } catch {}
  }
  for (const pid of marked()) {
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

const timer = setInterval(() => {
  if (alive(parent)) return;
  clearInterval(timer);
  // A moment for a clean stop to finish its own work; then what is left goes, politely first.
  killAll("SIGTERM");
  setTimeout(() => {
    killAll("SIGKILL");
    process.exit(0);
  }, 2000);
}, 500);
