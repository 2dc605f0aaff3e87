// The sandboxes of one server: their records (what the control plane answers), their folders, their
// processes, and their life cycle (auto-stop, auto-delete). This module is the one owner of sandbox state;
// route modules only call it.
//
// Layout of one sandbox, `<root>/sandboxes/<id>/`:
//   home/             HOME (npm global prefix in home/.npm-global, so `npm i -g` stays inside)
//   home/workspace/   the work dir (getWorkDir); relative toolbox paths resolve against it
//   tmp/              TMPDIR
//   .ports/           port shim mappings: file `3000` holds the real port the sandbox's port 3000 got
//   .daytona/         session shells' command files and logs
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DaytonaHttpError, daemonError } from './http-util.ts';
import { killGroup, MARKER_VAR, sweepMarkedProcesses } from './proc.ts';
import { Session } from './sessions.ts';
import type { ProcessHost } from './sessions.ts';

export type SandboxState = 'started' | 'stopping' | 'stopped' | 'error' | 'destroyed';

export interface CreateParams {
  name?: string;
  user?: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  public?: boolean;
  snapshot?: string;
  target?: string;
  cpu?: number;
  gpu?: number;
  memory?: number;
  disk?: number;
  autoStopInterval?: number;
  autoArchiveInterval?: number;
  autoDeleteInterval?: number;
  networkBlockAll?: boolean;
  networkAllowList?: string;
  buildInfo?: unknown;
}

/** Environment variables of the server that must not reach sandbox processes: npm's per-run settings
 * (they would point npm at this project), test-runner markers, and anything Daytona (credentials). */
const PRIVATE_ENV = /^(npm_|INIT_CWD$|VITEST|DAYTONA_|LOCAL_SANDBOX_|NODE_OPTIONS$|NODE_ENV$)/i;

export interface StoreOptions {
  root: string;
  minuteMs: number;
  /** absolute path of the compiled port shim, when it could be built */
  shimPath: string | undefined;
  /** the host's npm cache, shared by sandboxes (content-addressed, safe to share) */
  npmCache: string | undefined;
  log: (line: string) => void;
}

export class LocalSandbox implements ProcessHost {
  readonly id: string;
  readonly seq: number;
  readonly name: string;
  readonly createdAt: Date;
  updatedAt: Date;
  lastActivity: number;
  state: SandboxState = 'started';
  errorReason: string | undefined;
  labels: Record<string, string>;
  readonly params: CreateParams;
  autoStopInterval: number;
  autoArchiveInterval: number;
  autoDeleteInterval: number;
  readonly previewToken = randomBytes(16).toString('hex');
  readonly dir: string;
  readonly homeDir: string;
  readonly workDir: string;
  readonly tmpDir: string;
  readonly portsDir: string;
  readonly sessionsDir: string;
  runningSince: number | undefined;
  runningMs = 0;
  stoppedAt: number | undefined;
  readonly sessions = new Map<string, Session>();
  private readonly children = new Set<ChildProcess>();
  private busy = 0;
  private sessionSeq = 0;
  private readonly opts: StoreOptions;

  constructor(seq: number, params: CreateParams, opts: StoreOptions) {
    this.id = randomUUID();
    this.seq = seq;
    this.name = params.name || this.id;
    this.params = params;
    this.opts = opts;
    this.labels = { ...params.labels };
    this.createdAt = new Date();
    this.updatedAt = this.createdAt;
    this.lastActivity = Date.now();
    // Daytona's defaults: auto-stop after 15 idle minutes, archive after 7 days, never auto-delete.
    this.autoStopInterval = params.autoStopInterval ?? 15;
    this.autoArchiveInterval = params.autoArchiveInterval ?? 7 * 24 * 60;
    this.autoDeleteInterval = params.autoDeleteInterval ?? -1;
    this.dir = path.join(opts.root, 'sandboxes', this.id);
    this.homeDir = path.join(this.dir, 'home');
    this.workDir = path.join(this.homeDir, 'workspace');
    this.tmpDir = path.join(this.dir, 'tmp');
    this.portsDir = path.join(this.dir, '.ports');
    this.sessionsDir = path.join(this.dir, '.daytona', 'sessions');
    this.makeFolders();
    this.runningSince = Date.now();
  }

  makeFolders(): void {
    for (const d of [this.workDir, path.join(this.homeDir, '.npm-global', 'bin'), this.tmpDir, this.portsDir, this.sessionsDir]) {
      mkdirSync(d, { recursive: true });
    }
  }

  /** The environment of every sandbox process: the server's (less private variables), the sandbox's
   * own HOME/TMPDIR/npm prefix with its bins first in PATH, the port shim, then the sandbox `env`. */
  processEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!PRIVATE_ENV.test(k)) env[k] = v;
    const npmPrefix = path.join(this.homeDir, '.npm-global');
    Object.assign(env, {
      HOME: this.homeDir,
      TMPDIR: this.tmpDir,
      TMP: this.tmpDir,
      TEMP: this.tmpDir,
      SHELL: '/bin/bash',
      PATH: [path.join(npmPrefix, 'bin'), path.join(this.homeDir, '.local', 'bin'), process.env.PATH ?? '/usr/bin:/bin'].join(':'),
      NPM_CONFIG_PREFIX: npmPrefix,
      DAYTONA_SANDBOX_ID: this.id,
      DAYTONA_SANDBOX_USER: this.params.user ?? 'daytona',
      [MARKER_VAR]: this.id,
    });
    if (this.opts.npmCache) env.NPM_CONFIG_CACHE = this.opts.npmCache;
    if (this.opts.shimPath) {
      env.LD_PRELOAD = [this.opts.shimPath, process.env.LD_PRELOAD].filter(Boolean).join(':');
      env.LOCAL_SANDBOX_PORTS_DIR = this.portsDir;
    }
    return Object.assign(env, this.params.env, extra);
  }

  adopt(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  beginWork(): () => void {
    this.busy++;
    this.touch();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.busy--;
      this.touch();
    };
  }

  get hasRunningWork(): boolean {
    return this.busy > 0;
  }

  touch(): void {
    this.lastActivity = Date.now();
  }

  createSession(id: string): Session {
    if (this.sessions.has(id)) throw daemonError(409, `session ${id} already exists`);
    const session = new Session(id, path.join(this.sessionsDir, String(++this.sessionSeq)), this);
    this.sessions.set(id, session);
    return session;
  }

  session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw daemonError(404, `session ${id} not found`, 'PROCESS_NOT_FOUND');
    return s;
  }

  /** Kills every process of the sandbox: sessions, commands, and strays that left their group.
   * `forgetSessions: false` keeps the dead sessions listed, their commands ended with 137, as a
   * daemon that survived its processes would; stop and delete forget them, as a restarted one does. */
  async killProcesses(forgetSessions = true): Promise<void> {
    for (const s of this.sessions.values()) s.kill();
    if (forgetSessions) this.sessions.clear();
    for (const c of this.children) killGroup(c.pid);
    await sweepMarkedProcesses(this.id);
    // Mappings of dead listeners would point the proxy at ports other programs may now hold.
    await rm(this.portsDir, { recursive: true, force: true });
    mkdirSync(this.portsDir, { recursive: true });
  }

  runningTotalMs(now = Date.now()): number {
    return this.runningMs + (this.runningSince !== undefined ? now - this.runningSince : 0);
  }

  setState(state: SandboxState, now = Date.now()): SandboxState {
    const old = this.state;
    if (old === 'started' && state !== 'started' && this.runningSince !== undefined) {
      this.runningMs += now - this.runningSince;
      this.runningSince = undefined;
    }
    if (state === 'started' && old !== 'started') this.runningSince = now;
    this.state = state;
    this.updatedAt = new Date(now);
    return old;
  }

  /** The sandbox record in the shape of the generated `Sandbox` model (every required field). */
  toDto(baseUrl: string): Record<string, unknown> {
    const p = this.params;
    return {
      id: this.id,
      organizationId: 'local',
      name: this.name,
      snapshot: p.snapshot,
      user: p.user ?? 'daytona',
      env: { ...p.env },
      labels: { ...this.labels },
      public: p.public ?? false,
      networkBlockAll: p.networkBlockAll ?? false,
      networkAllowList: p.networkAllowList,
      target: p.target ?? 'local',
      cpu: p.cpu ?? 1,
      gpu: p.gpu ?? 0,
      memory: p.memory ?? 1,
      disk: p.disk ?? 3,
      state: this.state,
      desiredState: this.state === 'destroyed' ? 'destroyed' : this.state === 'started' ? 'started' : 'stopped',
      errorReason: this.errorReason,
      recoverable: false,
      backupState: 'None',
      autoStopInterval: this.autoStopInterval,
      autoArchiveInterval: this.autoArchiveInterval,
      autoDeleteInterval: this.autoDeleteInterval,
      buildInfo: p.buildInfo,
      createdAt: this.createdAt.toISOString(),
      updatedAt: this.updatedAt.toISOString(),
      lastActivityAt: new Date(this.lastActivity).toISOString(),
      sandboxClass: 'container',
      daemonVersion: 'local',
      toolboxProxyUrl: `${baseUrl}/toolbox`,
    };
  }
}

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
  private ticking = false;

  constructor(opts: StoreOptions) {
    super();
    this.opts = opts;
    mkdirSync(path.join(opts.root, 'sandboxes'), { recursive: true });
    // One timer drives every sandbox's auto-stop and auto-delete; its period follows the minute scale,
    // so a test with a 200 ms "minute" sees the effect within a fraction of it.
    const tickMs = Math.max(20, Math.min(5000, Math.floor(opts.minuteMs / 20)));
    this.timer = setInterval(() => void this.tick(), tickMs);
    this.timer.unref();
  }

  all(): LocalSandbox[] {
    return [...this.byId.values()];
  }

  /** Deleted sandboxes, oldest first (the newest MAX_DELETED_RECORDS). */
  deleted(): DeletedSandbox[] {
    return [...this.deletedRecords];
  }

  /** Time every sandbox ever made spent in `started`: live ones so far, deleted ones in full. */
  billedMs(now = Date.now()): number {
    return this.deletedRunningMs + this.all().reduce((sum, sb) => sum + sb.runningTotalMs(now), 0);
  }

  create(params: CreateParams): LocalSandbox {
    if (params.name && this.all().some((s) => s.name === params.name)) {
      throw new DaytonaHttpError(409, `Sandbox with name ${params.name} already exists`);
    }
    const sb = new LocalSandbox(++this.seq, params, this.opts);
    this.byId.set(sb.id, sb);
    this.stats.creates++;
    this.emit('created', sb);
    return sb;
  }

  /** By id or by name, as Daytona's `GET /sandbox/{sandboxIdOrName}`. */
  find(idOrName: string): LocalSandbox {
    const sb = this.byId.get(idOrName) ?? this.all().find((s) => s.name === idOrName);
    if (!sb) throw new DaytonaHttpError(404, `Sandbox with ID or name ${idOrName} not found`);
    return sb;
  }

  findById(id: string): LocalSandbox | undefined {
    return this.byId.get(id);
  }

  private changeState(sb: LocalSandbox, state: SandboxState): void {
    const oldState = sb.setState(state);
    if (oldState !== state) this.emit('state', { sandbox: sb, oldState, newState: state } satisfies StateChange);
  }

  start(sb: LocalSandbox): void {
    if (sb.state === 'started') return;
    sb.makeFolders();
    sb.errorReason = undefined;
    sb.stoppedAt = undefined;
    sb.touch();
    this.stats.starts++;
    this.changeState(sb, 'started');
  }

  /** Stop: every process dies, files stay. With autoDeleteInterval 0 the sandbox is deleted at once. */
  async stop(sb: LocalSandbox, reason: 'api' | 'auto' = 'api'): Promise<void> {
    if (sb.state === 'stopped' || sb.state === 'stopping' || sb.state === 'destroyed') return;
    if (reason === 'auto') this.stats.autoStops++;
    else this.stats.stops++;
    // `stopping` at once, so no toolbox call starts a process while the others are being killed.
    this.changeState(sb, 'stopping');
    await sb.killProcesses();
    sb.stoppedAt = Date.now();
    this.changeState(sb, 'stopped');
    if (sb.autoDeleteInterval === 0) await this.remove(sb, 'auto');
  }

  /** Delete: processes die, the folder goes, later lookups answer 404. */
  async remove(sb: LocalSandbox, reason: 'api' | 'auto' = 'api'): Promise<void> {
    if (!this.byId.has(sb.id)) return;
    // Gone for every reader at once (lookups, counters); the cleanup below may take a moment.
    this.byId.delete(sb.id);
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
    await sb.killProcesses();
    this.changeState(sb, 'destroyed');
    await rm(sb.dir, { recursive: true, force: true, maxRetries: 3 }).catch((err: unknown) => {
      this.opts.log(`warning: could not remove ${sb.dir}: ${String(err)}`);
    });
  }

  /** Admin "kill": the sandbox's processes die as if it crashed; optionally its state changes too. */
  async kill(sb: LocalSandbox, state?: 'error' | 'stopped', errorReason?: string): Promise<void> {
    this.stats.kills++;
    // The new state first (`stopping` on the way to `stopped`, as a stop does), so that no toolbox call
    // meets a `started` sandbox whose processes and sessions are half gone.
    if (state === 'error') {
      sb.errorReason = errorReason ?? 'killed by admin';
      this.changeState(sb, 'error');
    } else if (state === 'stopped') {
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
      for (const sb of this.all()) {
        if (sb.state === 'started') {
          // Running work (a command still going) counts as activity, however long it runs.
          if (sb.hasRunningWork) sb.touch();
          else if (sb.autoStopInterval > 0 && now - sb.lastActivity >= sb.autoStopInterval * minute) {
            await this.stop(sb, 'auto');
          }
        } else if (sb.state === 'stopped' && sb.autoDeleteInterval >= 0 && sb.stoppedAt !== undefined) {
          if (now - sb.stoppedAt >= sb.autoDeleteInterval * minute) await this.remove(sb, 'auto');
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
    await Promise.all(this.all().map((sb) => sb.killProcesses().catch(() => undefined)));
  }
}
