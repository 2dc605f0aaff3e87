// The shapes of a run's live state, as the run's object keeps them and its modules pass them around.
// Nothing here touches storage (run-state.ts does); the API's view of them is view.ts.
import type { LlmUsage } from "../agents/usage.ts";
import type { PreviewConfig, RunRequest, SandboxRequest } from "../run-request.ts";
import type { AttemptStatus, JobName, RoundStatus, RunStatus, WinnerStatus } from "../vocabulary.ts";

export interface RunState {
  id: string;
  accountId: string;
  request: RunRequest;
  status: RunStatus;
  error: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

export interface Tarball {
  key: string;
  size: number;
  sha256: string;
}

/** A packed file's parts as the pack job measured them: the whole file's size and SHA-256, then each part's. */
export interface PartManifest {
  size: number;
  sha256: string;
  parts: { size: number; sha256: string }[];
}

/**
 * Packing the winner's workspace: one try is one pack job in the winner's sandbox (its command), then one
 * R2 multipart upload the Worker pulls the job's parts into (its manifest says what the parts must be).
 */
export interface PackState {
  try: number;
  retries: number;
  cmdId: string | null;
  startedAt: number | null;
  uploadId: string | null;
  manifest: PartManifest | null;
}

export interface RoundState {
  number: number;
  prompt: string;
  status: RoundStatus;
  fromRound: number | null;
  /** A first round may start from another run's winner (the request's `base: {run, round}`). */
  baseWinner: { runId: string; round: number; attempt: number; sha256: string } | null;
  /** Attempts in this round and their variations (the first round's come from the run request). */
  attempts: number;
  variations: { model?: string; promptSuffix?: string }[] | null;
  /** How to serve this round's attempts for previews, when set on the round. */
  preview: PreviewConfig | null;
  /** What this round's sandboxes are made from, when set on the round or the run (the service's default otherwise). */
  sandbox: SandboxRequest | null;
  winnerAttempt: number | null;
  winnerStatus: WinnerStatus | null;
  winnerError: string | null;
  tarball: Tarball | null;
  pack: PackState | null;
  createdAt: number;
  finishedAt: number | null;
  updatedAt: number;
}

export interface UploadedPart {
  part: number;
  etag: string;
  size: number;
}

export interface AgentSummary {
  finalMessage: string | null;
  turns: number | null;
  costUsd: number | null;
  isError: boolean;
}

export interface DiffStats {
  files: number;
  additions: number;
  deletions: number;
}

export interface VerifyResult {
  command: string;
  exitCode: number;
  passed: boolean;
  outputTail: string;
}

/** How an attempt got its agent: found at the pinned version (in the round's snapshot), or installed. */
export interface AgentSetup {
  how: "preinstalled" | "installed";
  /** The agent's version as it reported it. */
  version: string | null;
  /** The snapshot the sandbox was made from, if any. */
  snapshot: string | null;
  /** How long the install job took. */
  seconds: number;
}

export interface AttemptState {
  round: number;
  number: number;
  status: AttemptStatus;
  sandboxId: string | null;
  /** Set before Daytona is asked for a sandbox, so a crash mid-create is noticed and the sandbox adopted. */
  createRequestedAt: number | null;
  /** The job now running (or last run) in the sandbox, the try it belongs to, and what is known of it. */
  job: JobName | null;
  jobTry: number;
  cmdId: string | null;
  exitCode: number | null;
  error: string | null;
  retries: number;
  summary: AgentSummary | null;
  diffStats: DiffStats | null;
  verify: VerifyResult | null;
  /** How the agent came to be in the sandbox (null until its install job has ended). */
  agentSetup: AgentSetup | null;
  /** Model calls through the credential gateway: tokens and cost, as the answers reported them. */
  usage: LlmUsage | null;
  timestamps: Partial<Record<AttemptStatus, number>>;
  /** The sandbox must still be deleted (a delete that failed is tried again). */
  cleanupPending: boolean;
  /** Failed tries at deleting the sandbox so far. */
  cleanupTries: number;
  /** The sandbox was deleted (its id stays, for the record). */
  sandboxDeleted: boolean;
  /** Daytona has marked the sandbox for destruction and the step is waiting to see it gone. */
  deletePending: boolean;
  /** Creates Daytona refused for quota so far (each waits longer before the next). */
  quotaWaits: number;
  /** Whether the sandbox reached PUBLIC_URL when probed at setup (null: not probed yet). */
  reachesWorker: boolean | null;
  /** The sandbox user's home, asked once. */
  homeDir: string | null;
  /** When the running job (its command) was started. */
  jobStartedAt: number | null;
  /** When the running job is killed and the attempt failed. */
  deadlineAt: number | null;
  /** Bumped on every write; a step whose attempt changed under it (a cancel, a report) drops its result. */
  version: number;
  updatedAt: number;
}

/** How an attempt's workspace is served, and the server and link of its latest preview. */
export interface PreviewState {
  /** The sandbox and workspace this was detected on; a change of either drops the detection. */
  sandboxId: string;
  workspaceKey: string;
  detected: { kind: string; command: string; port: number; install: string | null } | null;
  installed: boolean;
  /** The server's session command, while it may be running. */
  cmdId: string | null;
  url: string | null;
  expiresAt: number | null;
  /** When someone last asked for the preview; the server is stopped after the idle limit. */
  lastRequestedAt: number;
}

/** A job's exit as its runner reported it. */
export interface JobReport {
  exitCode: number;
  at: number;
}

export interface RunEvent {
  seq: number;
  at: number;
  round: number | null;
  attempt: number | null;
  type: string;
  data: unknown;
}

/** How often the object was woken: by its alarm, and by requests (fetches and runner reports). */
export interface WakeUps {
  alarms: number;
  requests: number;
}


/** A fresh attempt, queued. */
export function newAttempt(round: number, number: number, now: number): AttemptState {
  return {
    round,
    number,
    status: "queued",
    sandboxId: null,
    createRequestedAt: null,
    job: null,
    jobTry: 1,
    cmdId: null,
    jobStartedAt: null,
    deadlineAt: null,
    exitCode: null,
    agentSetup: null,
    error: null,
    retries: 0,
    summary: null,
    diffStats: null,
    verify: null,
    usage: null,
    timestamps: { queued: now },
    homeDir: null,
    cleanupPending: false,
    cleanupTries: 0,
    sandboxDeleted: false,
    deletePending: false,
    quotaWaits: 0,
    reachesWorker: null,
    version: 1,
    updatedAt: now,
  };
}
