// The shell scripts an attempt runs in its sandbox, one per phase. Each runs under the runner
// (src/agents/runner.agent.mjs), which keeps its output beside it in $HOME/.multishot/jobs and reports
// its exit code. Scripts are uploaded as files, so no user text is ever spliced into a command line.
import { AGENTS, MS_DIR, WORKSPACE, shellQuote } from "../agents/index.ts";
import type { RunRequest } from "../run-request.ts";
import type { JobName } from "../vocabulary.ts";

const GIT_ID = `-c user.name=multishot -c user.email=multishot@users.noreply.local`;

/** Where a round's workspace starts: the run's base (empty or a git clone), or an earlier round's winner. */
export type SeedSource =
  | { kind: "run-base" }
  | { kind: "winner"; sha256: string; fromRound: number; winnerAttempt: number; fromRun?: string };

export function seedScript(req: RunRequest, round: number, source: SeedSource): string {
  let fill = "";
  if (source.kind === "winner") {
    // The Worker has put the tarball here in parts; they are unpacked in order, hashed on the way, and
    // checked against the SHA-256 measured when the winner was packed.
    fill = `rm -f "${MS_DIR}/base.sha256"
cat "$HOME/${BASE_DIR}"/part.* \\
  | tee >(sha256sum | cut -d' ' -f1 > "${MS_DIR}/base.sha256.tmp" && mv "${MS_DIR}/base.sha256.tmp" "${MS_DIR}/base.sha256") \\
  | tar -xzf - --no-same-owner -C "${WORKSPACE}"
# The hash is written by a process substitution that may finish a moment after tar.
for i in $(seq 1 300); do [ -s "${MS_DIR}/base.sha256" ] && break; sleep 0.1; done
got=$(cat "${MS_DIR}/base.sha256" 2>/dev/null || echo none)
rm -rf "$HOME/${BASE_DIR}"
if [ "$got" != "${source.sha256}" ]; then echo "the winner's tarball is corrupt: sha256 $got, expected ${source.sha256}"; exit 1; fi
echo "seeded from round ${source.fromRound}'s winner (attempt ${source.winnerAttempt}), sha256 $got"`;
  } else if (req.base && "git" in req.base) {
    fill = `git clone --quiet ${shellQuote(req.base.git)} . 2>&1 || { echo "git clone failed"; exit 1; }
${req.base.ref ? `git -c advice.detachedHead=false checkout --quiet ${shellQuote(req.base.ref)} || { echo "no such ref"; exit 1; }` : ""}`;
  }
  const message =
    source.kind === "winner"
      ? `multishot: round ${round} base (winner of ${source.fromRun ? `run ${source.fromRun} ` : ""}round ${source.fromRound}, attempt ${source.winnerAttempt})`
      : `multishot: round ${round} base`;
  return `set -euo pipefail
# Emptied, not removed: the session's shell may be sitting in it.
mkdir -p "${WORKSPACE}"
cd "${WORKSPACE}"
find . -mindepth 1 -delete
${fill}
[ -d .git ] || git init --quiet
git add -A
git ${GIT_ID} commit --quiet --allow-empty -m ${shellQuote(message)}
git rev-parse HEAD > "${MS_DIR}/base-commit"
echo "base $(cat "${MS_DIR}/base-commit")"
`;
}

/**
 * Packs the winner's workspace (.git included, the run's excludes left out) into parts of `partBytes`
 * beside a manifest: the whole file's size and SHA-256, then each part's. Nothing leaves the sandbox
 * here: the Worker pulls the parts through the toolbox (src/durable/transfer.ts) and checks each one.
 */
export function packScript(req: RunRequest, partBytes: number, packTry: number): string {
  const excludes = req.excludes.map((e) => `--exclude=${shellQuote(e)}`).join(" ");
  return `set -euo pipefail
# A folder per try: a failed try's leftovers never count toward this one.
rm -rf "${MS_DIR}"/pack-*
out=${packDir(packTry)}
mkdir -p "$out"
tar --create --gzip ${excludes} -C "${WORKSPACE}" . \
  | tee >(sha256sum | cut -d' ' -f1 > "$out/sha256") \
  | split --bytes=${partBytes} --numeric-suffixes=1 --suffix-length=5 - "$out/part."
# The hash is written by a process substitution that may finish a moment after split.
for i in $(seq 1 600); do [ -s "$out/sha256" ] && break; sleep 0.1; done
# The manifest: the whole file's size (the parts' sizes added up) and SHA-256, then each part's.
total=0
: > "$out/parts"
for f in "$out"/part.*; do
  size=$(stat -c %s "$f")
  total=$((total + size))
  echo "$size $(sha256sum "$f" | cut -d' ' -f1)" >> "$out/parts"
done
{ echo "$total $(cat "$out/sha256")"; cat "$out/parts"; } > "$out/manifest.tmp"
mv "$out/manifest.tmp" "$out/manifest"
echo "packed $(head -n1 "$out/manifest") in $(ls "$out"/part.* | wc -l) parts"
`;
}

/** Where a packing try leaves its parts and manifest. */
export const packDir = (packTry: number) => `"${MS_DIR}/pack-${packTry}"`;

/** Where the Worker puts a next round's base tarball, in parts, before the seed job unpacks it. */
export const BASE_DIR = ".multishot/base";

export function agentScript(req: RunRequest, maxTurns: number, model: string | undefined): string {
  return `cd "${WORKSPACE}"
${AGENTS[req.agent].command(model ? { maxTurns, model } : { maxTurns })}
`;
}

/**
 * The agent's own environment (its credential or gateway URL), relative to the home: uploaded just before
 * each agent job starts, read and deleted by the runner before it starts the agent.
 */
export const AGENT_ENV_FILE = ".multishot/jobs/agent.env.json";

/**
 * Stages everything the agent left, writes the patch and its numstat against the round's base, then
 * runs the verify command (after the diff, so build outputs of the check never count as changes).
 */
export function collectScript(req: RunRequest): string {
  // The verify command is the user's own script (jobs/verify.sh), run by its own bash: its syntax and
  // options never mix with ours.
  const verify = req.verify
    ? `set +e
bash "${MS_DIR}/jobs/verify.sh" > "${MS_DIR}/verify.out" 2>&1 < /dev/null
echo $? > "${MS_DIR}/verify.exit"`
    : `rm -f "${MS_DIR}/verify.exit" "${MS_DIR}/verify.out"`;
  return `set -euo pipefail
cd "${WORKSPACE}"
base=$(cat "${MS_DIR}/base-commit")
git add -A
git diff --cached --binary "$base" > "${MS_DIR}/diff.patch"
git diff --cached --numstat "$base" > "${MS_DIR}/diff.numstat"
${verify}
exit 0
`;
}

export function verifyScript(req: RunRequest): string {
  return `cd "${WORKSPACE}"
${req.verify ?? "true"}
`;
}

/**
 * The session command that runs a job: the agent under the Node runner (which streams its output),
 * setup jobs under the bash runner. The marker lets a step find a command it started before a crash.
 */
/**
 * The session command of one job. It carries no secret: a session's commands can be listed by anything
 * in the sandbox that reaches its toolbox daemon, so the agent's credential travels in AGENT_ENV_FILE.
 */
export function jobCommand(job: JobName, jobTry: number, reportUrl: string | null): string {
  const runner = job === "agent" ? `node "${MS_DIR}/runner.mjs"` : `bash "${MS_DIR}/run-job.sh"`;
  return `${runner} "${MS_DIR}/jobs" ${job} ${jobTry} ${shellQuote(reportUrl ?? "-")} # ${jobMarker(job, jobTry)}`;
}

export const jobMarker = (job: JobName, jobTry: number) => `multishot-job:${job}:${jobTry}`;
