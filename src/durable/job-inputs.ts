// What an attempt's jobs are given: the files that go up once before its first job (the runners, the
// prompt, one script per job, the agent's own files), built from the run's request and the round.
import { AGENTS } from "../agents/index.ts";
import jobRunnerSource from "../agents/run-job.agent.sh";
import runnerSource from "../agents/runner.agent.mjs";
import { DEFAULT_MAX_TURNS } from "../run-request.ts";
import { tarballKey } from "../artifact-keys.ts";
import { oauthRefusal } from "../oauth-policy.ts";
import { llmGatewayUrl } from "../signed-urls.ts";
import { ATTEMPT_JOB_NAMES, type AttemptJobName } from "../vocabulary.ts";
import type { RunCore } from "./core.ts";
import { agentScript, BASE_DIR, collectScript, seedScript, verifyScript, type SeedSource } from "./jobs.ts";
import { retryPolicy } from "./retry.ts";
import { partFile, pushRange } from "./transfer.ts";
import type { AttemptState } from "./state.ts";

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
        return seedScript(req, a.round, this.seedSource(a.round));
      case "agent":
        // No credential, and no gateway URL: those go to the agent process alone (agentEnv).
        return agentScript(req, req.limits?.maxTurns ?? DEFAULT_MAX_TURNS, this.instructionsFor(a).model);
      case "collect":
        return collectScript(req);
    }
  }

  /**
   * What the agent process alone gets in its environment: in API-key mode its attempt's gateway URL (never
   * the key) when its sandbox reaches the Worker (the probe at setup); when it does not, the key itself
   * under AGENT_CREDENTIALS=direct, else `{fail}` with the reason; in OAuth mode the token, unless it would
   * be shared among accounts without the operator's say (src/oauth-policy.ts). It is uploaded as a file
   * the runner reads and deletes before the agent starts (AGENT_ENV_FILE): never in a job script, on a
   * command line or in the sandbox's environment, so no other job, and nothing after the agent, sees it.
   */
  async agentEnv(a: AttemptState): Promise<{ fail: string } | { env: Record<string, string> }> {
    const { env, state } = this.core;
    const run = state.requireRun();
    const agent = AGENTS[run.request.agent];
    if (env.ANTHROPIC_API_KEY && a.reachesWorker !== false) return { env: agent.agentEnv(env, await llmGatewayUrl(env, run.id, a.round, a.number)) };
    if (agent.needsGateway(env)) {
      if (env.AGENT_CREDENTIALS === "direct") return { env: agent.directEnv(env) };
      return {
        fail:
          `this sandbox cannot reach the service at PUBLIC_URL (${env.PUBLIC_URL}: the probe at setup, curl ${env.PUBLIC_URL.replace(/\/$/, "")}/health, failed), ` +
          "so the agent cannot use the credential gateway. On Daytona's Tiers 1 and 2 a sandbox reaches only an allowlist of essential services " +
          "(daytona.io/docs/en/network-limits). Set AGENT_CREDENTIALS=direct to hand the API key to the agent process (see the README for what that weakens), " +
          "set CLAUDE_CODE_OAUTH_TOKEN, or make PUBLIC_URL reachable from sandboxes (Tier 3 or a custom network allowlist).",
      };
    }
    const vars = agent.agentEnv(env, null);
    if (vars.CLAUDE_CODE_OAUTH_TOKEN) {
      const refused = await oauthRefusal(env);
      if (refused && !agent.credentialOptional) return { fail: refused };
      if (refused) return { env: {} };
    }
    return { env: vars };
  }

  /**
   * A round that starts from a stored winner: its tarball goes into the sandbox in parts, streamed from
   * R2 by the Worker, before the seed job unpacks and checks it. Nothing for a round without one.
   */
  async pushBase(a: AttemptState, sandboxId: string, homeDir: string): Promise<void> {
    const { env, sandboxes, state } = this.core;
    const source = this.seedSource(a.round);
    if (source.kind !== "winner") return;
    const key = tarballKey(source.fromRun ?? state.requireRun().id, source.fromRound);
    const head = await env.ARTIFACTS.head(key);
    if (!head) throw new Error(`the stored winner ${key} is missing from R2`);
    const partBytes = retryPolicy(env).partBytes;
    const parts = Math.max(1, Math.ceil(head.size / partBytes));
    for (let n = 1; n <= parts; n++) {
      const offset = (n - 1) * partBytes;
      await pushRange(env.ARTIFACTS, key, { offset, length: Math.min(partBytes, head.size - offset) }, sandboxes, sandboxId, partFile(`${homeDir}/${BASE_DIR}`, n));
    }
  }

  private seedSource(roundNo: number): SeedSource {
    const { state } = this.core;
    const round = state.round(roundNo)!;
    if (round.baseWinner) {
      const b = round.baseWinner;
      return { kind: "winner", sha256: b.sha256, fromRound: b.round, winnerAttempt: b.attempt, fromRun: b.runId };
    }
    if (round.fromRound === null) return { kind: "run-base" };
    const from = state.round(round.fromRound)!;
    return { kind: "winner", sha256: from.tarball!.sha256, fromRound: from.number, winnerAttempt: from.winnerAttempt! };
  }
}
