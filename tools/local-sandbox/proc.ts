// Process plumbing. Every sandbox command is a real `bash` that leads its own process group
// (`detached: true`), so killing the group (-pid) takes its children with it. Processes that leave the
// group (setsid, daemons) are still found by the marker variable every sandbox process inherits.
import { spawn } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';

export const BASH = existsSync('/bin/bash') ? '/bin/bash' : 'bash';

/** Name of the variable that marks every process of a sandbox, for the /proc sweep. */
export const MARKER_VAR = 'LOCAL_SANDBOX_ID';

export function spawnShell(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; stdio: StdioOptions }): ChildProcess {
  return spawn(BASH, args, { cwd: opts.cwd, env: opts.env, stdio: opts.stdio, detached: true });
}

/** SIGKILLs a process group; a group that is already gone is not an error. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** The shell's convention for a process ended by a signal: 128 + signal number. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return 128 + (signal ? (numbers[signal] ?? 9) : 9);
}

/** Kills every process whose environment carries `LOCAL_SANDBOX_ID=<id>`: the ones that escaped their
 * process group. Linux only (reads /proc); elsewhere it does nothing. */
export async function sweepMarkedProcesses(sandboxId: string): Promise<number> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return 0;
  }
  const needle = Buffer.from(`${MARKER_VAR}=${sandboxId}\0`);
  let killed = 0;
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
      .map(async (e) => {
        let environ: Buffer;
        try {
          environ = await readFile(`/proc/${e}/environ`);
        } catch {
          return;
        }
        const at = environ.indexOf(needle);
        if (at === 0 || (at > 0 && environ[at - 1] === 0)) {
          try {
            process.kill(Number(e), 'SIGKILL');
            killed++;
          } catch {
            /* gone meanwhile */
          }
        }
      }),
  );
  return killed;
}
