// The shell scripts an attempt runs in its sandbox, one per phase. Each runs under the runner
// (src/agents/runner.agent.mjs), which keeps its output beside it in $HOME/.multishot/jobs and reports
// its exit code. Scripts are uploaded as files, so no user text is ever spliced into a command line.
import { AGENTS, MS_DIR, WORKSPACE, shellQuote } from "../agents/index.ts";
import type { RunRequest } from "../run-request.ts";
import type { JobName } from "./store.ts";

/** Exit code a job uses for "transient, try again" (BSD's EX_TEMPFAIL). */
export const EXIT_TRANSIENT = 75;

const GIT_ID = `-c user.name=multishot -c user.email=multishot@users.noreply.local`;

export function seedScript(req: RunRequest): string {
  const clone =
    req.base && "git" in req.base
      ? `git clone --quiet ${shellQuote(req.base.git)} . 2>&1 || { echo "git clone failed"; exit 1; }
${req.base.ref ? `git -c advice.detachedHead=false checkout --quiet ${shellQuote(req.base.ref)} || { echo "no such ref: ${req.base.ref.replace(/[^A-Za-z0-9._\/-]/g, "")}"; exit 1; }` : ""}`
      : "";
  return `set -euo pipefail
mkdir -p "${WORKSPACE}"
cd "${WORKSPACE}"
if [ ! -d .git ]; then
${clone || "  true"}
fi
[ -d .git ] || git init --quiet
git add -A
git ${GIT_ID} commit --quiet --allow-empty -m "multishot: round base"
git rev-parse HEAD > "${MS_DIR}/base-commit"
echo "base $(cat "${MS_DIR}/base-commit")"
`;
}

export function agentScript(req: RunRequest, maxTurns: number, model: string | undefined): string {
  return `cd "${WORKSPACE}"
${AGENTS[req.agent].command(model ? { maxTurns, model } : { maxTurns })}
`;
}

/**
 * Stages everything the agent left, writes the patch and its numstat against the round's base, then
 * runs the verify command (after the diff, so build outputs of the check never count as changes).
 */
export function collectScript(req: RunRequest): string {
  const verify = req.verify
    ? `( ${req.verify} ) > "${MS_DIR}/verify.out" 2>&1 < /dev/null
echo $? > "${MS_DIR}/verify.exit"`
    : `rm -f "${MS_DIR}/verify.exit" "${MS_DIR}/verify.out"`;
  return `set -uo pipefail
cd "${WORKSPACE}"
base=$(cat "${MS_DIR}/base-commit")
git add -A
git diff --cached --binary "$base" > "${MS_DIR}/diff.patch"
git diff --cached --numstat "$base" > "${MS_DIR}/diff.numstat"
${verify}
exit 0
`;
}

/**
 * The session command that runs a job: the agent under the Node runner (which streams its output),
 * setup jobs under the bash runner. The marker lets a step find a command it started before a crash.
 */
export function jobCommand(job: JobName, jobTry: number, reportUrl: string | null): string {
  const runner = job === "agent" ? `node "${MS_DIR}/runner.mjs"` : `bash "${MS_DIR}/run-job.sh"`;
  return `${runner} "${MS_DIR}/jobs" ${job} ${jobTry} ${shellQuote(reportUrl ?? "-")} # ${jobMarker(job, jobTry)}`;
}

export const jobMarker = (job: JobName, jobTry: number) => `multishot-job:${job}:${jobTry}`;
