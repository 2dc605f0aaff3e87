// What the routes and the run's object say to each other over RPC, apart from the object's class, so that
// a route never imports the object (nor the sandbox programs the object ships).
import type { RunRequest } from "../run-request.ts";
import type { JobName } from "../vocabulary.ts";

export interface StartRun {
  id: string;
  accountId: string;
  request: RunRequest;
  /** The stored winner named by `request.base: {run, round}`, looked up (and authorized) by the route. */
  baseWinner?: { runId: string; round: number; attempt: number; sha256: string };
}

/** A report from an attempt's runner: agent output lines, or a job's exit code. */
export interface IngestReport {
  job: JobName;
  try: number;
  kind: "output" | "exit";
  lines?: string[];
  /** The number of the first of `lines` among the agent's non-empty stdout lines. */
  first?: number;
  exitCode?: number;
}

/** A refusal a route turns into an HTTP error; RPC results carry it as data, not as a thrown error. */
export type RefusalStatus = 400 | 402 | 403 | 404 | 409 | 410 | 429;
export type Refusal = { error: { status: RefusalStatus; code: string; message: string } };
export type Outcome<T> = { ok: T } | Refusal;

export const refuse = (status: RefusalStatus, code: string, message: string): Refusal => ({ error: { status, code, message } });
