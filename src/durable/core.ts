// What every module of the run engine works with: the run's state, its event log, its timers, Daytona,
// the Worker's settings. The object makes one and hands it to each module; modules never import each
// other's classes for what they ask of one another, but take it through a host interface of their own.
import { MS_DIR } from "../agents/index.ts";
import type { Env } from "../env.ts";
import type { Redact } from "../redact.ts";
import type { Sandboxes } from "../sandbox/client.ts";
import { describeSandboxError } from "../sandbox/errors.ts";
import type { JobName } from "../vocabulary.ts";
import type { EventLog } from "./event-log.ts";
import type { RunStore } from "./run-state.ts";
import type { Scheduler } from "./scheduler.ts";

export interface RunCore {
  readonly env: Env;
  readonly state: RunStore;
  readonly events: EventLog;
  readonly timers: Scheduler;
  /** Daytona, made on first use. */
  readonly sandboxes: Sandboxes;
  readonly redact: Redact;
}

/** The session every job of an attempt runs in. */
export const SESSION = "multishot";

/** The sandbox user's home, or an error when the sandbox gives none that is usable. */
export async function homeDirOf(sandboxes: Sandboxes, sandboxId: string): Promise<string> {
  const dir = await sandboxes.homeDir(sandboxId);
  if (!dir?.startsWith("/")) throw new Error(`the sandbox gave no usable home directory (${dir})`);
  return dir;
}

/** The last lines a failed job printed, to show as its reason. */
export async function jobTail(sandboxes: Sandboxes, sandboxId: string, job: JobName): Promise<string> {
  try {
    const res = await sandboxes.exec(
      sandboxId,
      job === "agent" ? `tail -c 1500 "${MS_DIR}/jobs/agent.err"` : `tail -c 1500 "${MS_DIR}/jobs/${job}.out"; tail -c 1500 "${MS_DIR}/jobs/${job}.err"`,
    );
    return res.output.trim().split("\n").slice(-12).join("\n").slice(-1500);
  } catch (err) {
    return `(its output could not be read: ${describeSandboxError(err)})`;
  }
}
