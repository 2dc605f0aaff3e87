// A picked winner's workspace on its way to R2 (table `upload_parts`). One try runs a pack job in the
// winner's sandbox that leaves the tarball there in parts beside a manifest (sizes and SHA-256s); then the
// Worker pulls each part through the toolbox into an R2 multipart upload (transfer.ts), checking each
// against the manifest and recording it, so a try resumes where a crash left it; the upload is completed
// only when every part is in and the sizes add up, so no partial object is ever visible. Nothing needs a
// connection from the sandbox: the pack job's exit is read off its followed log (follow.ts), as an
// attempt's is, with a poll behind it. A try that fails is aborted, and the next starts afresh after a backoff.
import type { Env } from "../env.ts";
import { tarballKey } from "../artifact-keys.ts";
import { describeSandboxError } from "../sandbox/errors.ts";
import { ingestUrl } from "../signed-urls.ts";
import type { SandboxCleanup } from "./cleanup.ts";
import { homeDirOf, jobTail, SESSION, type RunCore } from "./core.ts";
import { retryDecision } from "./decisions.ts";
import type { LogFollower } from "./follow.ts";
import type { Ingest } from "./ingest.ts";
import { jobCommand, packDir, packScript } from "./jobs.ts";
import { backoffMs, nextPollMs, retryPolicy } from "./retry.ts";
import type { RoundState, UploadedPart } from "./state.ts";
import { parseManifest, partFile, pullPart } from "./transfer.ts";

/** How long one try at packing and storing a winner may take. */
const PACK_MINUTES = 60;

type Row = Record<string, SqlStorageValue>;

/** The largest winner tarball a round may store (WINNER_MAX_BYTES, 2 GiB by default). */
export const DEFAULT_WINNER_MAX_BYTES = 2 * 1024 ** 3;
const winnerMaxBytes = (env: Env) => {
  const n = Number(env.WINNER_MAX_BYTES ?? DEFAULT_WINNER_MAX_BYTES);
  return Number.isFinite(n) && n > 0 ? n : DEFAULT_WINNER_MAX_BYTES;
};

export class WinnerTransfer {
  private readonly core: RunCore;
  private readonly sql: SqlStorage;
  private readonly ingest: Ingest;
  private readonly cleanup: SandboxCleanup;
  private readonly follower: LogFollower;
  /** Work that must outlive the call that started it (aborting an upload after a cancel). */
  private readonly background: (p: Promise<unknown>) => void;

  constructor(core: RunCore, parts: { sql: SqlStorage; ingest: Ingest; cleanup: SandboxCleanup; follower: LogFollower; background: (p: Promise<unknown>) => void }) {
    this.core = core;
    this.sql = parts.sql;
    this.ingest = parts.ingest;
    this.cleanup = parts.cleanup;
    this.follower = parts.follower;
    this.background = parts.background;
  }

  /** The winner timer's handler: start a try's pack job, wait for it, then carry its parts into R2. */
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
      if (!pack.cmdId) {
        // A finished attempt's sandbox may have been stopped for idling since: start it again.
        await sandboxes.ensureStarted(sandboxId);
        const homeDir = winner.homeDir ?? (await homeDirOf(sandboxes, sandboxId));
        await sandboxes.uploadFiles(sandboxId, [{ path: `${homeDir}/.multishot/jobs/pack.sh`, content: packScript(run.request, policy.partBytes, pack.try) }]);
        const report = winner.reachesWorker === false ? null : await ingestUrl(env, run.id, roundNo, winner.number);
        const cmdId = await sandboxes.startCommand(sandboxId, SESSION, jobCommand("pack", pack.try, report));
        if (!this.current(roundNo, pack.try)) return;
        const started = { ...pack, cmdId, startedAt: Date.now() };
        state.putRound({ ...state.round(roundNo)!, pack: started });
        events.append(roundNo, winner.number, "winner.packing", { try: pack.try });
        return await this.followAndPoll(roundNo, winner.number, sandboxId, started);
      }
      if (pack.startedAt !== null && Date.now() - pack.startedAt > PACK_MINUTES * 60_000) {
        await sandboxes.deleteSession(sandboxId, SESSION).catch(() => {});
        return await this.retry(roundNo, pack.try, `packing the winner took longer than ${PACK_MINUTES} minutes`);
      }
      let manifest = pack.manifest;
      let uploadId = pack.uploadId;
      if (!manifest || !uploadId) {
        const reported = this.ingest.reportedExit(roundNo, winner.number, "pack", pack.try);
        const exitCode = reported?.exitCode ?? (await sandboxes.commandExitCode(sandboxId, SESSION, pack.cmdId));
        if (exitCode === undefined) return await this.followAndPoll(roundNo, winner.number, sandboxId, pack);
        this.follower.stop(roundNo, winner.number, "pack");
        if (exitCode !== 0) {
          return await this.retry(roundNo, pack.try, `packing the winner failed (exit ${exitCode}): ${await jobTail(sandboxes, sandboxId, "pack")}`);
        }
        const listed = await sandboxes.exec(sandboxId, `cat ${packDir(pack.try)}/manifest`);
        manifest = parseManifest(listed.output);
        if (!manifest) return await this.retry(roundNo, pack.try, `the pack job left no readable manifest: ${listed.output.slice(-300)}`);
        // What a tenant's workspace may put into R2 through the Worker: past the cap it is never pulled.
        const cap = winnerMaxBytes(env);
        if (manifest.size > cap) {
          const r = state.round(roundNo)!;
          this.abandon(r, `the winner's workspace packs to ${manifest.size} bytes, over this service's limit of ${cap} (WINNER_MAX_BYTES): add build outputs and dependencies to the run's excludes and pick again`);
          return;
        }
        uploadId = (await env.ARTIFACTS.createMultipartUpload(tarballKey(run.id, roundNo), { httpMetadata: { contentType: "application/gzip" } })).uploadId;
        if (!this.current(roundNo, pack.try)) return;
        state.putRound({ ...state.round(roundNo)!, pack: { ...pack, manifest, uploadId } });
      }
      const homeDir = winner.homeDir ?? (await homeDirOf(sandboxes, sandboxId));
      const upload = env.ARTIFACTS.resumeMultipartUpload(tarballKey(run.id, roundNo), uploadId);
      const have = new Set(this.parts(roundNo, pack.try).map((p) => p.part));
      for (const [i, part] of manifest.parts.entries()) {
        const number = i + 1;
        if (have.has(number)) continue;
        const path = partFile(`${homeDir}/.multishot/pack-${pack.try}`, number);
        const uploaded = await pullPart(sandboxes, sandboxId, path, { number, ...part }, upload);
        if (!this.recordPart(roundNo, pack.try, { part: number, etag: uploaded.etag, size: part.size })) return;
      }
      await this.complete(roundNo, pack.try, manifest);
    } catch (err) {
      await this.retry(roundNo, pack.try, `packing the winner failed: ${describeSandboxError(err)}`);
    }
  }

  /**
   * Follows the pack job's log (its exit line pokes the winner timer) and sets the poll behind it: soon
   * while no stream is open, seldom while one is. Set before the stream opens, as an attempt's is.
   */
  private async followAndPoll(roundNo: number, attempt: number, sandboxId: string, pack: { try: number; cmdId: string | null; startedAt: number | null }): Promise<void> {
    const { timers, env } = this.core;
    const policy = retryPolicy(env);
    const timer = { kind: "winner", round: roundNo } as const;
    const target = { round: roundNo, number: attempt, sandboxId, cmdId: pack.cmdId, job: "pack" as const, jobTry: pack.try };
    const poll = (following: boolean) =>
      timers.schedule(timer, Date.now() + (following ? 4 * policy.pollMs : nextPollMs(policy, Date.now() - (pack.startedAt ?? Date.now()))));
    poll(this.follower.following(target));
    if ((await this.follower.follow(target)) && this.current(roundNo, pack.try)) poll(true);
  }

  /** Whether a packing try is still the round's current one (not stored, failed or moved on). */
  private current(roundNo: number, packTry: number): boolean {
    const round = this.core.state.round(roundNo);
    return round?.winnerStatus === "packing" && round.pack?.try === packTry;
  }

  private recordPart(roundNo: number, packTry: number, part: UploadedPart): boolean {
    if (!this.current(roundNo, packTry)) return false;
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
   * Completes a packing try: every part is in (each checked against its SHA-256 on the way) and they add
   * up to the size the sandbox measured. Only then does the object exist in R2.
   */
  private async complete(roundNo: number, packTry: number, manifest: { size: number; sha256: string; parts: unknown[] }): Promise<void> {
    const { state, events, timers, env } = this.core;
    const round = state.round(roundNo)!;
    const parts = this.parts(roundNo, packTry);
    const total = parts.reduce((n, p) => n + p.size, 0);
    if (parts.length !== manifest.parts.length || total !== manifest.size) {
      return this.retry(roundNo, packTry, `the parts stored add up to ${parts.length} parts and ${total} bytes, not ${manifest.parts.length} and ${manifest.size}`);
    }
    const key = tarballKey(state.requireRun().id, roundNo);
    const object = await env.ARTIFACTS.resumeMultipartUpload(key, round.pack!.uploadId!).complete(parts.map((p) => ({ partNumber: p.part, etag: p.etag })));
    if (object.size !== manifest.size) return this.retry(roundNo, packTry, `R2 holds ${object.size} bytes, not ${manifest.size}`);
    if (!this.current(roundNo, packTry)) return;
    this.follower.stop(roundNo, round.winnerAttempt!, "pack");
    state.putRound({ ...state.round(roundNo)!, winnerStatus: "stored", winnerError: null, tarball: { key, size: manifest.size, sha256: manifest.sha256 } });
    events.append(roundNo, round.winnerAttempt, "winner.stored", { size: manifest.size, sha256: manifest.sha256, parts: parts.length });
    // The tarball is safe: the winner's sandbox can go.
    const winner = state.attempt(roundNo, round.winnerAttempt!);
    if (winner) this.cleanup.release(winner);
    timers.unschedule({ kind: "winner", round: roundNo });
  }

  /** A winner being packed will not be (its run was cancelled): the try ends, its upload is aborted. */
  abandon(r: RoundState, reason: string): void {
    if (r.winnerAttempt !== null) this.follower.stop(r.number, r.winnerAttempt, "pack");
    this.core.state.putRound({ ...r, winnerStatus: "failed", winnerError: reason });
    this.pickAgain(r.number);
    this.core.events.append(r.number, r.winnerAttempt, "winner.pack_failed", { try: r.pack?.try ?? null, reason, final: true });
    this.core.timers.unschedule({ kind: "winner", round: r.number });
    if (r.pack?.uploadId) this.background(this.abortUpload(r.number, r.pack.uploadId));
  }

  /** A newest round's winner that could not be stored leaves the run waiting for a pick again. */
  private pickAgain(roundNo: number): void {
    const { state } = this.core;
    if (state.requireRun().status === "succeeded" && state.latestRound()?.number === roundNo) state.setRunStatus("awaiting_pick", null);
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
    if (round.winnerAttempt !== null) this.follower.stop(roundNo, round.winnerAttempt, "pack");
    const decision = retryDecision(pack.retries, policy.limit, (n) => backoffMs(policy, n));
    if (decision.giveUp) {
      state.putRound({ ...round, winnerStatus: "failed", winnerError: reason });
      this.pickAgain(roundNo);
      return timers.unschedule({ kind: "winner", round: roundNo });
    }
    state.putRound({ ...round, pack: { try: pack.try + 1, retries: pack.retries + 1, cmdId: null, startedAt: null, uploadId: null, manifest: null } });
    timers.schedule({ kind: "winner", round: roundNo }, Date.now() + decision.delayMs);
  }
}
