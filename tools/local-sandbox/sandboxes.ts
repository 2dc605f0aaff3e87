// The sandboxes of one server and their life cycle (create, start, stop, delete, recover, auto-stop,
// auto-delete), lenient or as Daytona's API (lifecycle.ts has the rules). This module is the one owner
// of sandbox state; route modules only call it. One sandbox's record, folders and processes: sandbox.ts.
import { EventEmitter } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DaytonaHttpError } from './http-util.ts';
import { checkDelete, checkQuota, checkRecover, checkStart, checkStop, hasQuota } from './lifecycle.ts';
import type { Resources, SandboxState } from './lifecycle.ts';
import { LocalSandbox } from './sandbox.ts';
import type { CreateParams, SandboxImage, SandboxRecord, StoreOptions } from './sandbox.ts';
import { copyTemplate } from './snapshots.ts';
import { sweepMarkedProcesses } from './proc.ts';

export type { SandboxState } from './lifecycle.ts';
export { LocalSandbox } from './sandbox.ts';
export type { CreateParams, StoreOptions } from './sandbox.ts';

/** How long start and recover answers wait for `started`, as the API does (sandbox.controller.ts
 * `waitForSandboxStarted(sandbox, 30)`). */
export const START_WAIT_MS = 30_000;

export interface StateChange {
  sandbox: LocalSandbox;
  oldState: SandboxState;
  newState: SandboxState;
}

/** What the server keeps of a deleted sandbox: enough to audit leaks and cost after the fact. */
export interface DeletedSandbox {
  id: string;
  name: string;
  labels: Record<string, string>;
  createdAt: string;
  deletedAt: string;
  /** time spent in `started`, from creation to deletion (what Daytona bills) */
  runningMs: number;
}

/** Deleted sandboxes remembered one by one (the oldest are forgotten beyond this); their billed time
 * is summed for ever. */
const MAX_DELETED_RECORDS = 20_000;

export interface StoreStats {
  creates: number;
  deletes: number;
  starts: number;
  stops: number;
  autoStops: number;
  autoDeletes: number;
  kills: number;
}

export class SandboxStore extends EventEmitter {
  private readonly byId = new Map<string, LocalSandbox>();
  private seq = 0;
  deletedCount = 0;
  /** the newest deleted sandboxes, oldest first (at most MAX_DELETED_RECORDS) */
  private readonly deletedRecords: DeletedSandbox[] = [];
  /** billed (started) time of every deleted sandbox, including those no longer in deletedRecords */
  private deletedRunningMs = 0;
  readonly stats: StoreStats = { creates: 0, deletes: 0, starts: 0, stops: 0, autoStops: 0, autoDeletes: 0, kills: 0 };
  private readonly opts: StoreOptions;
  private readonly timer: NodeJS.Timeout;
  /** scheduled state transitions (lifecycle 'daytona'), cleared at shutdown */
  private readonly transitions = new Set<NodeJS.Timeout>();
  private ticking = false;

  constructor(opts: StoreOptions) {
    super();
    this.opts = opts;
    mkdirSync(path.join(opts.root, 'sandboxes'), { recursive: true });
    this.restore();
    // One timer drives every sandbox's auto-stop and auto-delete; its period follows the minute scale,
    // so a test with a 200 ms "minute" sees the effect within a fraction of it.
    const tickMs = Math.max(20, Math.min(5000, Math.floor(opts.minuteMs / 20)));
    this.timer = setInterval(() => void this.tick(), tickMs);
    this.timer.unref();
  }

  /**
   * The sandboxes a previous server left under this root, back as they were but `stopped` (their
   * processes did not survive it: any that did are killed). A destroy it had accepted is finished now.
   */
  private restore(): void {
    const dir = path.join(this.opts.root, 'sandboxes');
    for (const id of readdirSync(dir)) {
      let record: SandboxRecord;
      try {
        record = JSON.parse(readFileSync(path.join(dir, id, 'record.json'), 'utf8')) as SandboxRecord;
      } catch {
        continue; // no record (an older server's folder): not a sandbox this server knows
      }
      if (record.v !== 1 || record.id !== id) continue;
      if (record.markedForDestroy || record.state === 'destroyed' || record.state === 'destroying') {
        rmSync(path.join(dir, id), { recursive: true, force: true, maxRetries: 3 });
        continue;
      }
      const sb = new LocalSandbox(record.seq, record.params, this.opts, record);
      this.seq = Math.max(this.seq, record.seq);
      this.byId.set(sb.id, sb);
      sb.persist();
      void sweepMarkedProcesses(sb.id);
    }
  }

  private get daytona(): boolean {
    return this.opts.behaviour.lifecycle === 'daytona';
  }

  /** Every sandbox the API still knows, those marked for destroy included. */
  all(): LocalSandbox[] {
    return [...this.byId.values()];
  }

  /** Sandboxes not deleted (a sandbox marked for destroy is deleted as far as leaks and cost go). */
  live(): LocalSandbox[] {
    return this.all().filter((sb) => !sb.markedForDestroy);
  }

  /** Deleted sandboxes, oldest first (the newest MAX_DELETED_RECORDS). */
  deleted(): DeletedSandbox[] {
    return [...this.deletedRecords];
  }

  /** Time every sandbox ever made spent in `started`: live ones so far, deleted ones in full. */
  billedMs(now = Date.now()): number {
    return this.deletedRunningMs + this.live().reduce((sum, sb) => sum + sb.runningTotalMs(now), 0);
  }

  /** The organization's quota for a sandbox that will hold `need` (others: every other sandbox). */
  checkQuota(need: Partial<Resources>, exclude?: LocalSandbox): void {
    const quota = this.opts.behaviour.quota;
    if (!hasQuota(quota)) return;
    checkQuota(quota, this.all().filter((sb) => sb !== exclude), need);
  }

  /** A new sandbox: `started` at once, or `creating` for `createPendingMs` first. `from` a snapshot,
   * its home starts as a copy of the snapshot's template (copyTemplate: hard links and small copies,
   * synchronous, so no request ever sees a half-filled home). */
  create(params: CreateParams, from?: { image: SandboxImage; templateHome: string }): LocalSandbox {
    if (params.name && this.all().some((s) => s.name === params.name)) {
      throw new DaytonaHttpError(409, `Sandbox with name ${params.name} already exists`);
    }
    const sb = new LocalSandbox(++this.seq, params, this.opts, undefined, from?.image);
    if (from) {
      try {
        copyTemplate(from.templateHome, sb.homeDir);
        sb.makeFolders();
      } catch (err) {
        rmSync(sb.dir, { recursive: true, force: true, maxRetries: 3 });
        throw err;
      }
    }
    const pendingMs = this.opts.behaviour.createPendingMs;
    if (pendingMs > 0) sb.setState('creating');
    this.byId.set(sb.id, sb);
    sb.persist();
    this.stats.creates++;
    this.emit('created', sb);
    if (pendingMs > 0) this.later(sb, pendingMs, () => this.changeState(sb, 'started'));
    return sb;
  }

  /** By id or by name, as Daytona's `GET /sandbox/{sandboxIdOrName}`. */
  find(idOrName: string): LocalSandbox {
    const sb = this.byId.get(idOrName) ?? this.all().find((s) => s.name === idOrName);
    if (!sb || sb.hidden) throw new DaytonaHttpError(404, `Sandbox with ID or name ${idOrName} not found`);
    return sb;
  }

  findById(id: string): LocalSandbox | undefined {
    return this.byId.get(id);
  }

  private changeState(sb: LocalSandbox, state: SandboxState): void {
    sb.transition++;
    const oldState = sb.setState(state);
    sb.persist();
    if (oldState !== state) this.emit('state', { sandbox: sb, oldState, newState: state } satisfies StateChange);
  }

  /** Runs a state change `ms` from now, unless another state change overtook it. */
  private later(sb: LocalSandbox, ms: number, run: () => void | Promise<void>): void {
    const token = sb.transition;
    const t = setTimeout(() => {
      this.transitions.delete(t);
      if (sb.transition !== token) return;
      Promise.resolve(run()).catch((err: unknown) => this.opts.log(`warning: state change of ${sb.id} failed: ${String(err)}`));
    }, ms);
    t.unref();
    this.transitions.add(t);
  }

  /** Resolves with the sandbox once it is `started`, or leaves it as it is after `timeoutMs`; rejects
   * as the API does when it goes to `error` meanwhile ("Sandbox failed to start"). */
  waitForStarted(sb: LocalSandbox, timeoutMs = START_WAIT_MS): Promise<LocalSandbox> {
    if (sb.state === 'started') return Promise.resolve(sb);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(t);
        this.off('state', onState);
      };
      const onState = (c: StateChange): void => {
        if (c.sandbox !== sb) return;
        if (c.newState === 'started') {
          done();
          resolve(sb);
        } else if (c.newState === 'error' || c.newState === 'build_failed') {
          done();
          reject(new DaytonaHttpError(400, `Sandbox failed to start: ${sb.errorReason ?? ''}`));
        }
      };
      const t = setTimeout(() => {
        done();
        resolve(sb);
      }, timeoutMs);
      t.unref();
      this.on('state', onState);
    });
  }

  // --- start -----------------------------------------------------------------------------------

  /** `POST /sandbox/{id}/start`. Lenient: `started` at once from any state. Daytona: the API's rules,
   * the quota checked again, then `starting` for `stateChangeMs`. */
  requestStart(sb: LocalSandbox): void {
    if (!this.daytona) return this.start(sb);
    if (!checkStart(sb)) return;
    this.checkQuota(sb.resources, sb);
    this.beginStart(sb);
  }

  private beginStart(sb: LocalSandbox): void {
    // A started-again sandbox runs a fresh daemon: sessions an error or a crash left listed are gone
    // (their shells died with the processes), so a command in one is a missing session, never a hang.
    sb.forgetSessions();
    sb.makeFolders();
    sb.desiredState = 'started';
    sb.errorReason = undefined;
    sb.stoppedAt = undefined;
    sb.touch();
    this.stats.starts++;
    const ms = this.opts.behaviour.stateChangeMs;
    if (ms <= 0) return this.changeState(sb, 'started');
    this.changeState(sb, 'starting');
    this.later(sb, ms, () => {
      sb.touch(); // a state change resets the idle timer
      this.changeState(sb, 'started');
    });
  }

  start(sb: LocalSandbox): void {
    if (sb.state === 'started') return;
    sb.makeFolders();
    sb.errorReason = undefined;
    sb.stoppedAt = undefined;
    sb.desiredState = 'started';
    sb.touch();
    this.stats.starts++;
    this.changeState(sb, 'started');
  }

  // --- stop ------------------------------------------------------------------------------------

  /** `POST /sandbox/{id}/stop`. Daytona answers at once with `stopping` (an ephemeral sandbox is
   * destroyed instead); the sandbox is `stopped` `stateChangeMs` later. */
  async requestStop(sb: LocalSandbox, reason: 'api' | 'auto' = 'api'): Promise<void> {
    if (!this.daytona) return this.stop(sb, reason);
    checkStop(sb);
    if (sb.autoDeleteInterval === 0) return this.markForDestroy(sb, reason);
    if (reason === 'auto') this.stats.autoStops++;
    else this.stats.stops++;
    sb.desiredState = 'stopped';
    this.changeState(sb, 'stopping');
    const killed = sb.killProcesses();
    this.later(sb, this.opts.behaviour.stateChangeMs, async () => {
      await killed;
      sb.stoppedAt = Date.now();
      this.changeState(sb, 'stopped');
    });
    await killed;
  }

  /** Stop: every process dies, files stay. With autoDeleteInterval 0 the sandbox is deleted at once. */
  async stop(sb: LocalSandbox, reason: 'api' | 'auto' = 'api'): Promise<void> {
    if (sb.state === 'stopped' || sb.state === 'stopping' || sb.state === 'destroyed') return;
    if (reason === 'auto') this.stats.autoStops++;
    else this.stats.stops++;
    // `stopping` at once, so no toolbox call starts a process while the others are being killed.
    sb.desiredState = 'stopped';
    this.changeState(sb, 'stopping');
    await sb.killProcesses();
    sb.stoppedAt = Date.now();
    this.changeState(sb, 'stopped');
    if (sb.autoDeleteInterval === 0) await this.remove(sb, 'auto');
  }

  // --- delete ----------------------------------------------------------------------------------

  /** `DELETE /sandbox/{id}`. Lenient: gone at once. Daytona: 409 during a state change, else only
   * marked (see markForDestroy). */
  async requestDelete(sb: LocalSandbox, reason: 'api' | 'auto' = 'api'): Promise<void> {
    if (!this.daytona) return this.remove(sb, reason);
    checkDelete(sb);
    await this.markForDestroy(sb, reason);
  }

  /** What deleting takes off the books, once per sandbox: it leaves the live list, its billed time
   * ends. */
  private recordDeleted(sb: LocalSandbox, reason: 'api' | 'auto'): void {
    this.deletedCount++;
    if (reason === 'auto') this.stats.autoDeletes++;
    else this.stats.deletes++;
    // Billing stops when the delete is accepted, as the record leaves the live list: no moment is
    // counted twice or missed between the two lists.
    const now = Date.now();
    const record: DeletedSandbox = {
      id: sb.id,
      name: sb.name,
      labels: { ...sb.labels },
      createdAt: sb.createdAt.toISOString(),
      deletedAt: new Date(now).toISOString(),
      runningMs: sb.runningTotalMs(now),
    };
    this.deletedRunningMs += record.runningMs;
    this.deletedRecords.push(record);
    if (this.deletedRecords.length > MAX_DELETED_RECORDS) this.deletedRecords.shift();
  }

  /**
   * Daytona's delete: the record gets `desiredState: destroyed` and a `DESTROYED_<name>_<ms>` name and
   * reads `destroying` (the API's DTO maps started/stopped + destroyed to it); it stays listed and
   * gettable until the runner has destroyed it, `destroyDelayMs` later, then 404. The runner removes the
   * container as soon as the event reaches it, so the processes die at once. An errored sandbox is 404
   * at once (findOneByIdOrName hides errored sandboxes marked for destroy).
   */
  private async markForDestroy(sb: LocalSandbox, reason: 'api' | 'auto'): Promise<void> {
    if (sb.markedForDestroy || !this.byId.has(sb.id)) return;
    this.recordDeleted(sb, reason);
    sb.hidden = sb.state === 'error' || sb.state === 'build_failed';
    sb.markedForDestroy = true;
    sb.desiredState = 'destroyed';
    sb.name = `DESTROYED_${sb.name}_${Date.now()}`;
    this.changeState(sb, 'destroying');
    const killed = sb.killProcesses();
    this.later(sb, this.opts.behaviour.destroyDelayMs, async () => {
      await killed;
      this.byId.delete(sb.id);
      this.changeState(sb, 'destroyed');
      await rm(sb.dir, { recursive: true, force: true, maxRetries: 3 }).catch((err: unknown) => {
        this.opts.log(`warning: could not remove ${sb.dir}: ${String(err)}`);
      });
    });
    await killed;
  }

  /** Delete: processes die, the folder goes, later lookups answer 404. */
  async remove(sb: LocalSandbox, reason: 'api' | 'auto' = 'api'): Promise<void> {
    if (!this.byId.has(sb.id)) return;
    // Gone for every reader at once (lookups, counters); the cleanup below may take a moment.
    this.byId.delete(sb.id);
    this.recordDeleted(sb, reason);
    await sb.killProcesses();
    sb.desiredState = 'destroyed';
    this.changeState(sb, 'destroyed');
    await rm(sb.dir, { recursive: true, force: true, maxRetries: 3 }).catch((err: unknown) => {
      this.opts.log(`warning: could not remove ${sb.dir}: ${String(err)}`);
    });
  }

  // --- recover ---------------------------------------------------------------------------------

  /** `POST /sandbox/{id}/recover`. Lenient: an errored sandbox starts again. Daytona: only a
   * recoverable `error` (else 400); it goes to `stopped` (its disk counted again), then starts unless
   * `skipStart`. */
  recover(sb: LocalSandbox, skipStart: boolean): void {
    if (!this.daytona) {
      if (sb.state !== 'error' && sb.state !== 'build_failed') throw new DaytonaHttpError(400, 'Sandbox must be in error state to recover');
      sb.recoverable = false;
      if (skipStart) {
        sb.errorReason = undefined;
        sb.desiredState = 'stopped';
        sb.stoppedAt = Date.now();
        this.changeState(sb, 'stopped');
      } else this.start(sb);
      return;
    }
    checkRecover(sb);
    this.checkQuota({ disk: sb.resources.disk }, sb);
    sb.errorReason = undefined;
    sb.recoverable = false;
    sb.desiredState = 'stopped';
    sb.stoppedAt = Date.now();
    this.changeState(sb, 'stopped');
    if (!skipStart) this.requestStart(sb);
  }

  /** Admin "kill": the sandbox's processes die as if it crashed; optionally its state changes too. */
  async kill(sb: LocalSandbox, state?: 'error' | 'build_failed' | 'stopped', errorReason?: string, recoverable = false): Promise<void> {
    this.stats.kills++;
    // The new state first (`stopping` on the way to `stopped`, as a stop does), so that no toolbox call
    // meets a `started` sandbox whose processes and sessions are half gone.
    if (state === 'error' || state === 'build_failed') {
      sb.errorReason = errorReason ?? 'killed by admin';
      sb.recoverable = state === 'error' && recoverable;
      this.changeState(sb, state);
    } else if (state === 'stopped') {
      sb.desiredState = 'stopped';
      this.changeState(sb, 'stopping');
    }
    await sb.killProcesses(state === 'stopped');
    if (state === 'stopped') {
      sb.stoppedAt = Date.now();
      this.changeState(sb, 'stopped');
    }
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const now = Date.now();
      const minute = this.opts.minuteMs;
      const processesCount = this.opts.behaviour.autoStopActivity === 'processes';
      for (const sb of this.all()) {
        if (sb.markedForDestroy) continue;
        if (sb.state === 'started' && sb.desiredState === 'started') {
          // An open toolbox or preview request is activity (Daytona's proxy refreshes it every 50 s
          // while a request lasts); a running command is too, but only when processes count.
          if (sb.openRequests > 0 || (processesCount && sb.hasRunningWork)) sb.touch();
          else if (sb.autoStopInterval > 0 && now - sb.lastActivity >= sb.autoStopInterval * minute) {
            await this.requestStop(sb, 'auto');
          }
        } else if (sb.state === 'stopped' && sb.autoDeleteInterval >= 0 && sb.stoppedAt !== undefined) {
          if (now - sb.stoppedAt >= sb.autoDeleteInterval * minute) await this.requestDelete(sb, 'auto');
        }
      }
    } catch (err) {
      this.opts.log(`warning: lifecycle tick failed: ${String(err)}`);
    } finally {
      this.ticking = false;
    }
  }

  /** Server shutdown: every process of every sandbox dies; folders stay (the root may be reused). */
  async shutdown(): Promise<void> {
    clearInterval(this.timer);
    for (const t of this.transitions) clearTimeout(t);
    this.transitions.clear();
    await Promise.all(this.all().map((sb) => sb.killProcesses().catch(() => undefined)));
  }
}
