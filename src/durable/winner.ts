// A picked winner's workspace on its way to R2 (table `upload_parts`). One try packs the workspace in the
// winner's sandbox and streams it, in parts, through the Worker's upload route into an R2 multipart
// upload; the route hashes each part and records it here; `complete` checks every part and the size and
// only then completes the upload, so no partial object is ever visible. A try that fails (the job dies,
// an upload breaks) is aborted, and the next try starts a fresh upload after a backoff.
import { tarballKey } from "../artifact-keys.ts";
import { describeSandboxError } from "../sandbox/errors.ts";
import { ingestUrl, uploadUrl } from "../signed-urls.ts";
import type { SandboxCleanup } from "./cleanup.ts";
import { refuse, type Outcome } from "./contract.ts";
import { homeDirOf, jobTail, SESSION, type RunCore } from "./core.ts";
import { retryDecision } from "./decisions.ts";
import type { Ingest } from "./ingest.ts";
import { jobCommand, packScript } from "./jobs.ts";
import { backoffMs, retryPolicy } from "./retry.ts";
import type { RoundState, UploadedPart } from "./state.ts";

/** How long one try at packing and uploading a winner may take. */
const PACK_MINUTES = 60;
/** How long a winner's upload URL stays good. */
const UPLOAD_URL_TTL_MS = 6 * 60 * 60_000;

type Row = Record<string, SqlStorageValue>;

export class WinnerTransfer {
  private readonly core: RunCore;
  private readonly sql: SqlStorage;
  private readonly ingest: Ingest;
  private readonly cleanup: SandboxCleanup;
  /** Work that must outlive the call that started it (aborting an upload after a cancel). */
  private readonly background: (p: Promise<unknown>) => void;

  constructor(core: RunCore, parts: { sql: SqlStorage; ingest: Ingest; cleanup: SandboxCleanup; background: (p: Promise<unknown>) => void }) {
    this.core = core;
    this.sql = parts.sql;
    this.ingest = parts.ingest;
    this.cleanup = parts.cleanup;
    this.background = parts.background;
  }

  /** The winner timer's handler: start a try, or look at the running one. */
  async step(roundNo: number): Promise<void> {
    const { state, timers, events, env, sandboxes } = this.core;
    const timer = { kind: "winner", round: roundNo } as const;
    const round = state.round(roundNo);
    const pack = round?.pack;
    if (!round || !pack || round.winnerStatus !== "packing") return timers.unschedule(timer);
    const winner = state.attempt(roundNo, round.winnerAttempt!)!;
    const run = state.requireRun();
    const sandboxId = winner.sandboxId!;
    const policy = retryPolicy(env);
    try {
      if (!pack.uploadId) {
        // A finished attempt's sandbox may have been stopped for idling since: start it again.
        await sandboxes.ensureStarted(sandboxId);
        const upload = await env.ARTIFACTS.createMultipartUpload(tarballKey(run.id, roundNo), { httpMetadata: { contentType: "application/gzip" } });
        state.putRound({ ...round, pack: { ...pack, uploadId: upload.uploadId, cmdId: null } });
        const url = await uploadUrl(env, run.id, roundNo, pack.try, Date.now() + UPLOAD_URL_TTL_MS);
        const homeDir = winner.homeDir ?? (await homeDirOf(sandboxes, sandboxId));
        await sandboxes.uploadFiles(sandboxId, [
          { path: `${homeDir}/.multishot/jobs/pack.sh`, content: packScript(run.request, url, policy.partBytes, pack.try) },
        ]);
        const report = await ingestUrl(env, run.id, roundNo, winner.number);
        const cmdId = await sandboxes.startCommand(sandboxId, SESSION, jobCommand("pack", pack.try, report));
        const now = state.round(roundNo)!;
        if (now.pack?.try === pack.try) state.putRound({ ...now, pack: { ...now.pack, cmdId, startedAt: Date.now() } });
        events.append(roundNo, winner.number, "winner.packing", { try: pack.try });
        return timers.schedule(timer, Date.now() + policy.pollMs);
      }
      if (pack.startedAt !== null && Date.now() - pack.startedAt > PACK_MINUTES * 60_000) {
        await sandboxes.deleteSession(sandboxId, SESSION).catch(() => {});
        return await this.retry(roundNo, pack.try, `packing the winner took longer than ${PACK_MINUTES} minutes`);
      }
      const reported = this.ingest.reportedExit(roundNo, winner.number, "pack", pack.try);
      const exitCode = reported?.exitCode ?? (pack.cmdId ? await sandboxes.commandExitCode(sandboxId, SESSION, pack.cmdId) : 1);
      if (exitCode === undefined) return timers.schedule(timer, Date.now() + policy.pollMs);
      if (state.round(roundNo)!.winnerStatus === "stored") return timers.unschedule(timer);
      await this.retry(roundNo, pack.try, `packing the winner failed (exit ${exitCode}): ${await jobTail(sandboxes, sandboxId, "pack")}`);
    } catch (err) {
      await this.retry(roundNo, pack.try, `packing the winner failed: ${describeSandboxError(err)}`);
    }
  }

  /** Where the upload route puts parts of a winner's tarball, while that packing try is current. */
  uploadTarget(roundNo: number, packTry: number): { key: string; uploadId: string } | null {
    const round = this.core.state.round(roundNo);
    if (!round || round.winnerStatus !== "packing" || round.pack?.try !== packTry || !round.pack.uploadId) return null;
    return { key: tarballKey(this.core.state.requireRun().id, roundNo), uploadId: round.pack.uploadId };
  }

  recordPart(roundNo: number, packTry: number, part: UploadedPart): boolean {
    if (!this.uploadTarget(roundNo, packTry)) return false;
    this.sql.exec(
      `INSERT INTO upload_parts (round, try, part, etag, size) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(round, try, part) DO UPDATE SET etag=excluded.etag, size=excluded.size`,
      roundNo,
      packTry,
      part.part,
      part.etag,
      part.size,
    );
    this.core.events.append(roundNo, this.core.state.round(roundNo)!.winnerAttempt, "winner.part", { try: packTry, part: part.part, size: part.size });
    return true;
  }

  /**
   * Completes a packing try: every part must have arrived (each was checked against its SHA-256 as it
   * streamed in) and add up to the size the sandbox measured. Only then does the object exist in R2.
   */
  async complete(roundNo: number, packTry: number, claim: { parts: number; size: number; sha256: string }): Promise<Outcome<{ size: number }>> {
    const { state, events, timers, env } = this.core;
    const target = this.uploadTarget(roundNo, packTry);
    if (!target) return refuse(410, "gone", "this upload is not the current one");
    const parts = this.parts(roundNo, packTry);
    const expected = Array.from({ length: claim.parts }, (_, i) => i + 1);
    if (parts.length !== claim.parts || !parts.every((p, i) => p.part === expected[i])) {
      return refuse(409, "parts_missing", `expected parts 1..${claim.parts}, have ${parts.map((p) => p.part).join(",") || "none"}`);
    }
    const total = parts.reduce((n, p) => n + p.size, 0);
    if (total !== claim.size) return refuse(409, "size_mismatch", `parts add up to ${total} bytes, not ${claim.size}`);
    const object = await env.ARTIFACTS.resumeMultipartUpload(target.key, target.uploadId).complete(parts.map((p) => ({ partNumber: p.part, etag: p.etag })));
    if (object.size !== claim.size) return refuse(409, "size_mismatch", `R2 holds ${object.size} bytes, not ${claim.size}`);
    const round = state.round(roundNo)!;
    if (round.winnerStatus !== "packing" || round.pack?.try !== packTry) return refuse(410, "gone", "this upload is not the current one");
    state.putRound({ ...round, winnerStatus: "stored", winnerError: null, tarball: { key: target.key, size: claim.size, sha256: claim.sha256 } });
    events.append(roundNo, round.winnerAttempt, "winner.stored", { size: claim.size, sha256: claim.sha256, parts: claim.parts });
    // The tarball is safe: the winner's sandbox can go.
    const winner = state.attempt(roundNo, round.winnerAttempt!);
    if (winner) this.cleanup.release(winner);
    timers.poke({ kind: "winner", round: roundNo });
    return { ok: { size: claim.size } };
  }

  /** A winner being packed will not be (its run was cancelled): the try ends, its upload is aborted. */
  abandon(r: RoundState, reason: string): void {
    this.core.state.putRound({ ...r, winnerStatus: "failed", winnerError: reason });
    this.core.events.append(r.number, r.winnerAttempt, "winner.pack_failed", { try: r.pack?.try ?? null, reason, final: true });
    this.core.timers.unschedule({ kind: "winner", round: r.number });
    if (r.pack?.uploadId) this.background(this.abortUpload(r.number, r.pack.uploadId));
  }

  private parts(roundNo: number, packTry: number): UploadedPart[] {
    return this.sql
      .exec<Row>("SELECT part, etag, size FROM upload_parts WHERE round = ? AND try = ? ORDER BY part", roundNo, packTry)
      .toArray()
      .map((r) => ({ part: Number(r.part), etag: String(r.etag), size: Number(r.size) }));
  }

  private async abortUpload(roundNo: number, uploadId: string): Promise<void> {
    try {
      await this.core.env.ARTIFACTS.resumeMultipartUpload(tarballKey(this.core.state.requireRun().id, roundNo), uploadId).abort();
    } catch (err) {
      console.error("aborting a failed upload failed (R2 expires it)", err instanceof Error ? err.message : err);
    }
  }

  private async retry(roundNo: number, packTry: number, reason: string): Promise<void> {
    const { state, events, timers, env } = this.core;
    const before = state.round(roundNo);
    // Only the try that failed may be retried: the round may have been stored or moved on meanwhile.
    if (!before || before.winnerStatus !== "packing" || before.pack?.try !== packTry) return;
    if (before.pack.uploadId) await this.abortUpload(roundNo, before.pack.uploadId);
    const round = state.round(roundNo)!;
    if (round.winnerStatus !== "packing" || round.pack?.try !== packTry) return;
    const pack = round.pack;
    const policy = retryPolicy(env);
    events.append(roundNo, round.winnerAttempt, "winner.pack_failed", { try: pack.try, reason });
    const decision = retryDecision(pack.retries, policy.limit, (n) => backoffMs(policy, n));
    if (decision.giveUp) {
      state.putRound({ ...round, winnerStatus: "failed", winnerError: reason });
      return timers.unschedule({ kind: "winner", round: roundNo });
    }
    state.putRound({ ...round, pack: { try: pack.try + 1, retries: pack.retries + 1, uploadId: null, cmdId: null, startedAt: null } });
    timers.schedule({ kind: "winner", round: roundNo }, Date.now() + decision.delayMs);
  }
}
