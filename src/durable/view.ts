// The run as the API shows it. Built from the object's live state; holds nothing secret
// (no sandbox env, no tokens, no signing material).
import type { LlmUsage } from "../agents/usage.ts";
import type { AttemptStatus, RoundStatus, RunStatus, WinnerStatus } from "../vocabulary.ts";
import type { SandboxRequest } from "../run-request.ts";
import type { AgentSetup, AgentSummary, AttemptState, DiffStats, PreviewState, RoundState, RunState, VerifyResult } from "./state.ts";

export interface AttemptView {
  number: number;
  status: AttemptStatus;
  sandboxId: string | null;
  /** The attempt's sandbox is gone (or going): nothing more can run in it, no preview either. */
  sandboxReleased: boolean;
  exitCode: number | null;
  error: string | null;
  retries: number;
  /** How the sandbox got its agent, with a line to show: "preinstalled in snapshot X", "installed in 23 s". */
  agentSetup: (AgentSetup & { text: string }) | null;
  summary: AgentSummary | null;
  /** Model calls through the credential gateway (API-key mode): calls, tokens, cost in USD. */
  usage: LlmUsage | null;
  diffStats: DiffStats | null;
  verify: VerifyResult | null;
  /** When each phase began (ms since epoch). */
  timestamps: Partial<Record<AttemptStatus, number>>;
  updatedAt: number;
  /** The attempt's latest preview link, while it is good. */
  preview: { url: string; expiresAt: number } | null;
  links: { diff: string | null; log: string | null; cancel: string; preview: string };
}

export interface RoundView {
  number: number;
  prompt: string;
  status: RoundStatus;
  /** The round whose winner this one started from (rounds form a tree). */
  fromRound: number | null;
  /** What this round's sandboxes were asked to be made from (null: the service's default). */
  sandbox: SandboxRequest | null;
  winner: {
    attempt: number;
    status: WinnerStatus;
    error: string | null;
    tarball: { size: number; sha256: string; url: string } | null;
  } | null;
  createdAt: number;
  finishedAt: number | null;
  attempts: AttemptView[];
  links: { winner: string; next: string };
}

export interface RunView {
  id: string;
  status: RunStatus;
  error: string | null;
  prompt: string;
  agent: string;
  config: Omit<RunState["request"], "prompt">;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  rounds: RoundView[];
  /** The newest event's seq: read events (or an SSE stream, with Last-Event-ID) from here for what follows. */
  lastEventSeq: number;
  links: { self: string; events: string; cancel: string };
}

export function toRunView(
  run: RunState,
  rounds: RoundState[],
  attempts: AttemptState[],
  publicUrl: string,
  previews: (PreviewState & { round: number; number: number })[] = [],
  lastEventSeq = 0,
): RunView {
  const now = Date.now();
  const previewOf = (a: AttemptState) => {
    const p = previews.find((x) => x.round === a.round && x.number === a.number);
    if (!p?.url || !p.expiresAt || p.expiresAt <= now || !p.cmdId || p.sandboxId !== a.sandboxId || a.sandboxDeleted || a.cleanupPending) return null;
    return { url: p.url, expiresAt: p.expiresAt };
  };
  const base = `${publicUrl.replace(/\/$/, "")}/api/runs/${run.id}`;
  const { prompt, ...config } = run.request;
  return {
    id: run.id,
    status: run.status,
    error: run.error,
    prompt,
    agent: run.request.agent,
    config,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    finishedAt: run.finishedAt,
    rounds: rounds.map((r) => ({
      number: r.number,
      prompt: r.prompt,
      status: r.status,
      fromRound: r.fromRound,
      sandbox: r.sandbox ?? null,
      winner:
        r.winnerAttempt !== null && r.winnerStatus !== null
          ? {
              attempt: r.winnerAttempt,
              status: r.winnerStatus,
              error: r.winnerError,
              tarball: r.tarball
                ? { size: r.tarball.size, sha256: r.tarball.sha256, url: `${base}/rounds/${r.number}/winner.tar.gz` }
                : null,
            }
          : null,
      createdAt: r.createdAt,
      finishedAt: r.finishedAt,
      links: { winner: `${base}/rounds/${r.number}/winner`, next: `${base}/rounds` },
      attempts: attempts
        .filter((a) => a.round === r.number)
        .map((a) => ({
          number: a.number,
          status: a.status,
          sandboxId: a.sandboxId,
          sandboxReleased: Boolean(a.sandboxDeleted || a.cleanupPending),
          exitCode: a.exitCode,
          error: a.error,
          retries: a.retries,
          agentSetup: a.agentSetup ? { ...a.agentSetup, text: agentSetupText(a.agentSetup) } : null,
          summary: a.summary,
          usage: a.usage ?? null,
          diffStats: a.diffStats,
          verify: a.verify,
          timestamps: a.timestamps,
          updatedAt: a.updatedAt,
          preview: previewOf(a),
          links: {
            diff: a.status === "done" ? `${base}/rounds/${r.number}/attempts/${a.number}/diff` : null,
            log: a.status === "done" ? `${base}/rounds/${r.number}/attempts/${a.number}/log` : null,
            cancel: `${base}/attempts/${a.number}/cancel`,
            preview: `${base}/rounds/${r.number}/attempts/${a.number}/preview`,
          },
        })),
    })),
    lastEventSeq,
    links: { self: base, events: `${base}/events`, cancel: `${base}/cancel` },
  };
}

/** One line on how an attempt got its agent. */
export function agentSetupText(s: AgentSetup): string {
  const version = s.version ? `${s.version} ` : "";
  if (s.how === "preinstalled") return `${version}preinstalled${s.snapshot ? ` in snapshot ${s.snapshot}` : " in the sandbox's image"}`;
  return `${version}installed in ${s.seconds < 10 ? s.seconds.toFixed(1) : Math.round(s.seconds)} s`;
}
