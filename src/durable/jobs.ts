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
  | { kind: "winner"; url: string; sha256: string; fromRound: number; winnerAttempt: number; fromRun?: string };

export function seedScript(req: RunRequest, round: number, source: SeedSource): string {
  let fill = "";
  if (source.kind === "winner") {
    // Streamed from R2 straight into tar; the bytes are hashed on the way and checked against the
    // SHA-256 recorded when the winner was packed.
    fill = `rm -f "${MS_DIR}/base.sha256"
# A stalled transfer (under 1 KB/s for a minute) is given up, not waited out until the job's deadline.
if curl -fsS --retry 3 --retry-delay 1 --connect-timeout 15 --speed-limit 1024 --speed-time 60 ${shellQuote(source.url)} \
  | tee >(sha256sum | cut -d' ' -f1 > "${MS_DIR}/base.sha256.tmp" && mv "${MS_DIR}/base.sha256.tmp" "${MS_DIR}/base.sha256") \
  | tar -xzf - --no-same-owner -C "${WORKSPACE}"; then
  # The hash is written by a process substitution that may finish a moment after tar.
  for i in $(seq 1 300); do [ -s "${MS_DIR}/base.sha256" ] && break; sleep 0.1; done
  got=$(cat "${MS_DIR}/base.sha256" 2>/dev/null || echo none)
else
  # The stream broke off (curl cannot retry what tar already read): fetch the whole file, with retries
  # for any error, then check and unpack it.
  echo "the winner's tarball download broke off; fetching it again"
  find . -mindepth 1 -delete
  # --retry-all-errors (curl 7.71+) also retries a reset connection; an older curl retries what it can.
  retry_all=$(curl --help all 2>/dev/null | grep -e '--retry-all-errors' >/dev/null && echo --retry-all-errors || true)
  curl -fsS --retry 5 $retry_all --retry-delay 2 --connect-timeout 15 --speed-limit 1024 --speed-time 60 -o "${MS_DIR}/base.tar.gz" ${shellQuote(source.url)}
  got=$(sha256sum "${MS_DIR}/base.tar.gz" | cut -d' ' -f1)
  if [ "$got" = "${source.sha256}" ]; then tar -xzf "${MS_DIR}/base.tar.gz" --no-same-owner -C "${WORKSPACE}"; fi
  rm -f "${MS_DIR}/base.tar.gz"
fi
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
 * Packs the winner's workspace (.git included, the run's excludes left out) and uploads it in parts while
 * tar is still writing: `split --filter` hands each part to an uploader that runs in the background (a
 * few at a time), which PUTs it with its SHA-256 to the signed upload URL. The whole file's size and
 * SHA-256 are measured on the way and sent with the completion. The Worker streams every part into an R2
 * multipart upload, which becomes visible only when completed.
 */
export function packScript(req: RunRequest, upload: string, partBytes: number, packTry: number): string {
  const excludes = req.excludes.map((e) => `--exclude=${shellQuote(e)}`).join(" ");
  return `set -euo pipefail
# A folder per try: a failed try's stragglers never count toward this one.
rm -rf "${MS_DIR}"/pack-*
out="${MS_DIR}/pack-${packTry}"
rm -rf "$out"
mkdir -p "$out"
export UPLOAD=${shellQuote(upload)} OUT="$out"
# One part: keep it on disk only while it uploads; at most 3 uploads at a time.
cat > "$out/put-part.sh" <<'PART'
set -euo pipefail
n=$((10#\${FILE##*.}))
f="$OUT/part.$n"
cat > "$f"
while [ "$(ls "$OUT"/uploading.* 2>/dev/null | wc -l)" -ge 3 ]; do sleep 0.05; done
touch "$OUT/uploading.$n"
(
  set +e
  psha=$(sha256sum "$f" | cut -d' ' -f1)
  if [ -n "$psha" ] && curl -fsS --retry 3 --retry-delay 1 -m 900 -X PUT -H "x-part-sha256: $psha" -H 'content-type: application/octet-stream' \
       -T "$f" "$UPLOAD/parts/$n" > /dev/null 2> "$OUT/error.$n"; then
    rm -f "$OUT/error.$n"
  fi
  rm -f "$f"
  echo "$n" >> "$OUT/done"
  rm -f "$OUT/uploading.$n"
) &
PART
tar --create --gzip ${excludes} -C "${WORKSPACE}" . \
  | tee >(sha256sum | cut -d' ' -f1 > "$out/sha256.tmp" && mv "$out/sha256.tmp" "$out/sha256") \
        >(wc -c > "$out/size.tmp" && mv "$out/size.tmp" "$out/size") \
  | split --bytes=${partBytes} --numeric-suffixes=1 --suffix-length=5 --filter='bash "$OUT/put-part.sh"' - "$out/p."
while [ "$(ls "$out"/uploading.* 2>/dev/null | wc -l)" -gt 0 ]; do sleep 0.05; done
n=$(wc -l < "$out/done")
for i in $(seq 1 600); do [ -s "$out/sha256" ] && [ -s "$out/size" ] && break; sleep 0.1; done
if ls "$out"/error.* > /dev/null 2>&1; then cat "$out"/error.*; exit 1; fi
size=$(tr -d ' ' < "$out/size")
sha=$(cat "$out/sha256")
curl -fsS --retry 3 --retry-delay 1 -m 300 -X POST -H 'content-type: application/json' \
  -d '{"parts":'"$n"',"size":'"$size"',"sha256":"'"$sha"'"}' "$UPLOAD/complete"
echo
echo "packed $size bytes in $n parts, sha256 $sha"
`;
}

export function agentScript(req: RunRequest, maxTurns: number, model: string | undefined, secrets: Record<string, string>): string {
  const exports = Object.entries(secrets)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}`)
    .join("\n");
  return `cd "${WORKSPACE}"
${exports}
${AGENTS[req.agent].command(model ? { maxTurns, model } : { maxTurns })}
`;
}

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
export function jobCommand(job: JobName, jobTry: number, reportUrl: string | null): string {
  const runner = job === "agent" ? `node "${MS_DIR}/runner.mjs"` : `bash "${MS_DIR}/run-job.sh"`;
  return `${runner} "${MS_DIR}/jobs" ${job} ${jobTry} ${shellQuote(reportUrl ?? "-")} # ${jobMarker(job, jobTry)}`;
}

export const jobMarker = (job: JobName, jobTry: number) => `multishot-job:${job}:${jobTry}`;
