// What an attempt's jobs are given: the files that go up once before its first job (the runners, the
// prompt, one script per job, the agent's own files), built from the run's request and the round.
import { AGENTS } from "../agents/index.ts";
import jobRunnerSource from "../agents/run-job.agent.sh";
import runnerSource from "../agents/runner.agent.mjs";
import { DEFAULT_MAX_TURNS } from "../run-request.ts";
import { downloadUrl, llmGatewayUrl } from "../signed-urls.ts";
import { ATTEMPT_JOB_NAMES, type AttemptJobName } from "../vocabulary.ts";
import type { RunCore } from "./core.ts";
import { agentScript, collectScript, seedScript, verifyScript, type SeedSource } from "./jobs.ts";
import type { AttemptState } from "./state.ts";

/** How long a next round's download URL for its base tarball stays good. */
const DOWNLOAD_URL_TTL_MS = 6 * 60 * 60_000;

export interface SandboxFile {
  /** Relative to the sandbox user's home. */
  path: string;
  content: string;
}

export class JobInputs {
  private readonly core: RunCore;

  constructor(core: RunCore) {
    this.core = core;
  }

  /** The prompt and model of one attempt: its round's prompt, with the round's variation applied. */
  instructionsFor(a: AttemptState): { prompt: string; model?: string } {
    const run = this.core.state.requireRun();
    const round = this.core.state.round(a.round)!;
    const v = round.variations?.[a.number - 1];
    const prompt = v?.promptSuffix ? `${round.prompt}\n\n${v.promptSuffix}` : round.prompt;
    const model = v?.model ?? run.request.model;
    return model ? { prompt, model } : { prompt };
  }

  /** Everything the attempt will need, uploaded once, in one request, before its first job. */
  async attemptFiles(a: AttemptState): Promise<SandboxFile[]> {
    const request = this.core.state.requireRun().request;
    return [
      { path: ".multishot/runner.mjs", content: runnerSource },
      { path: ".multishot/run-job.sh", content: jobRunnerSource },
      { path: ".multishot/prompt.txt", content: this.instructionsFor(a).prompt },
      ...(await Promise.all(ATTEMPT_JOB_NAMES.map(async (job) => ({ path: `.multishot/jobs/${job}.sh`, content: await this.jobScript(a, job) })))),
      { path: ".multishot/jobs/verify.sh", content: verifyScript(request) },
      ...AGENTS[request.agent].files(),
    ];
  }

  private async jobScript(a: AttemptState, job: AttemptJobName): Promise<string> {
    const { env, state } = this.core;
    const run = state.requireRun();
    const req = run.request;
    switch (job) {
      case "install":
        return AGENTS[req.agent].installScript();
      case "seed":
        return seedScript(req, a.round, await this.seedSource(a.round));
      case "agent": {
        // API-key mode: the agent gets its attempt's gateway URL, never the key.
        const gateway = env.ANTHROPIC_API_KEY ? await llmGatewayUrl(env, run.id, a.round, a.number) : null;
        const agentEnv = AGENTS[req.agent].agentEnv(env, gateway);
        return agentScript(req, req.limits?.maxTurns ?? DEFAULT_MAX_TURNS, this.instructionsFor(a).model, agentEnv);
      }
      case "collect":
        return collectScript(req);
    }
  }

  private async seedSource(roundNo: number): Promise<SeedSource> {
    const { env, state } = this.core;
    const round = state.round(roundNo)!;
    if (round.baseWinner) {
      const b = round.baseWinner;
      const url = await downloadUrl(env, b.runId, b.round, Date.now() + DOWNLOAD_URL_TTL_MS);
      return { kind: "winner", url, sha256: b.sha256, fromRound: b.round, winnerAttempt: b.attempt, fromRun: b.runId };
    }
    if (round.fromRound === null) return { kind: "run-base" };
    const from = state.round(round.fromRound)!;
    return {
      kind: "winner",
      url: await downloadUrl(env, state.requireRun().id, from.number, Date.now() + DOWNLOAD_URL_TTL_MS),
      sha256: from.tarball!.sha256,
      fromRound: from.number,
      winnerAttempt: from.winnerAttempt!,
    };
  }
}
