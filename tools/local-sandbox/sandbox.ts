// One sandbox: its record (what the control plane answers), its folders, its processes' environment
// and its sessions. The store (sandboxes.ts) owns the life cycle and is the only one that changes state.
//
// Layout of one sandbox, `<root>/sandboxes/<id>/`:
//   home/             HOME (npm global prefix in home/.npm-global, so `npm i -g` stays inside)
//   home/workspace/   the work dir (getWorkDir); relative toolbox paths resolve against it
//   tmp/              TMPDIR
//   .ports/           port shim mappings: file `3000` holds the real port the sandbox's port 3000 got
//   .daytona/         session shells' command files and logs
//   record.json       the sandbox's record (what the control plane answers), rewritten on every change:
//                     a restarted server finds every sandbox again (Daytona keeps sandboxes whatever
//                     happens to its API), `stopped`, files intact, as after an auto-stop
// A sandbox made from a snapshot starts with its home as a copy of the snapshot's template
// (snapshots.ts) and keeps what it needs of the snapshot (its ENV, work dir, resources) in its record.
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { applyImageEnv } from './dockerfile.ts';
import type { ImageEnvEntry } from './dockerfile.ts';
import { daemonError } from './http-util.ts';
import { DEFAULT_RESOURCES } from './lifecycle.ts';
import type { DesiredState, Resources, SandboxState } from './lifecycle.ts';
import { killGroup, MARKER_VAR, sweepMarkedProcesses } from './proc.ts';
import type { Behaviour, EgressRule } from './profile.ts';
import { parseNetworkAllowList, shimRules } from './profile.ts';
import { Session } from './sessions.ts';
import type { ProcessHost } from './sessions.ts';

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

/** The only variables of the server's own environment that reach sandbox processes: this machine's
 * plumbing (locale, terminal, proxies, CA bundles), as a container image configures it. A Daytona sandbox
 * starts from its image's environment plus the create's `env` (the SDK's `envVars`; `POST /sandbox`,
 * ../shared/docs/daytona-contract.md), never the caller's: the server's secrets (ANTHROPIC_API_KEY, an OAuth token, the
 * service's signing secret when npm start runs it) must not show in a sandbox's `env`. MULTISHOT_START
 * (npm start's mark, no secret) goes on, so its watchdog finds every sandbox process if it dies. */
const MACHINE_ENV =
  /^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TERM|TZ|(HTTPS?|NO|ALL)_PROXY|NODE_EXTRA_CA_CERTS|SSL_CERT_(FILE|DIR)|CURL_CA_BUNDLE|GIT_SSL_CAINFO|REQUESTS_CA_BUNDLE|AWS_CA_BUNDLE|NIX_SSL_CERT_FILE|MULTISHOT_START)$/i;

export interface StoreOptions {
  root: string;
  minuteMs: number;
  /** absolute path of the compiled port shim, when it could be built */
  shimPath: string | undefined;
  /** the host's npm cache, shared by sandboxes (content-addressed, safe to share) */
  npmCache: string | undefined;
  /** which behaviours are on (profile.ts) */
  behaviour: Behaviour;
  /** destinations a restricted sandbox may reach besides `behaviour.egressAllow` (the server itself) */
  serverEgressAllow: EgressRule[];
  log: (line: string) => void;
}

/** What a sandbox made from a snapshot keeps of it, in its own record: the snapshot may be deleted
 * afterwards, and the sandbox must go on as it was. */
export interface SandboxImage {
  snapshotId: string;
  /** what the sandbox record's `snapshot` field shows (Daytona stores the name: sandbox.service.ts 637) */
  snapshotName: string;
  /** the Dockerfile's ENV, expanded in each process's environment (dockerfile.ts expandWord) */
  env: ImageEnvEntry[];
  /** the work dir relative to HOME: the Dockerfile's last WORKDIR, `workspace` without one */
  workDir: string;
  /** a sandbox from a snapshot has the snapshot's resources (sandbox.service.ts 517-520) */
  resources: Resources;
}

/** Where a set of processes lives: a sandbox's folders, or a snapshot build's (snapshots.ts). */
export interface ProcessHome {
  /** the mark every process carries for the /proc sweep (MARKER_VAR): the sandbox's or the snapshot's id */
  markerId: string;
  homeDir: string;
  tmpDir: string;
  portsDir: string;
}

/** What goes over a ProcessHome's environment, in this order. */
export interface ProcessEnvLayers {
  /** DAYTONA_SANDBOX_ID and _USER: a sandbox's processes have them, a build's do not */
  sandbox?: { id: string; user: string };
  /** an image's ENV (a snapshot's, or a build's so far), each value expanded over what is set before it */
  imageEnv?: readonly ImageEnvEntry[];
  /** the create's `env`, then a call's `envs`: later ones win, also over the image's */
  env?: readonly Record<string, string>[];
  /** a create's own network limits (Tier 3+), when they are enforced */
  network?: Pick<CreateParams, 'networkBlockAll' | 'networkAllowList'>;
}

export type EnvOptions = Pick<StoreOptions, 'npmCache' | 'shimPath' | 'behaviour' | 'serverEgressAllow'>;

/** The environment of every sandbox process, and of every step of a snapshot build (so what a build
 * installs lands where a sandbox finds it): the machine's plumbing from the server's, the home's own
 * HOME/TMPDIR/npm prefix with its bins first in PATH, the npm cache, the port shim, the image's ENV,
 * the given env, and last the egress policy, so that no env can switch it off by accident. */
export function processEnvFor(home: ProcessHome, layers: ProcessEnvLayers, opts: EnvOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (MACHINE_ENV.test(k)) env[k] = v;
  const npmPrefix = path.join(home.homeDir, '.npm-global');
  Object.assign(env, {
    HOME: home.homeDir,
    TMPDIR: home.tmpDir,
    TMP: home.tmpDir,
    TEMP: home.tmpDir,
    SHELL: '/bin/bash',
    PATH: [path.join(npmPrefix, 'bin'), path.join(home.homeDir, '.local', 'bin'), process.env.PATH ?? '/usr/bin:/bin'].join(':'),
    NPM_CONFIG_PREFIX: npmPrefix,
    [MARKER_VAR]: home.markerId,
  });
  if (layers.sandbox) Object.assign(env, { DAYTONA_SANDBOX_ID: layers.sandbox.id, DAYTONA_SANDBOX_USER: layers.sandbox.user });
  if (opts.npmCache) env.NPM_CONFIG_CACHE = opts.npmCache;
  if (opts.shimPath) {
    env.LD_PRELOAD = [opts.shimPath, process.env.LD_PRELOAD].filter(Boolean).join(':');
    env.LOCAL_SANDBOX_PORTS_DIR = home.portsDir;
  }
  if (layers.imageEnv) applyImageEnv(env, layers.imageEnv);
  for (const layer of layers.env ?? []) Object.assign(env, layer);
  if (opts.shimPath) Object.assign(env, egressEnv(opts, layers.network));
  return env;
}

/** What the port shim enforces for a set of processes (port-shim.c, "Egress"): the profile's egress,
 * and a create's own limits when they are enforced. */
function egressEnv(opts: EnvOptions, network: ProcessEnvLayers['network']): Record<string, string> {
  const b = opts.behaviour;
  const env: Record<string, string> = {};
  if (b.egress === 'restricted') {
    env.LOCAL_SANDBOX_EGRESS = 'restricted';
    env.LOCAL_SANDBOX_EGRESS_ALLOW = shimRules([...b.egressAllow, ...opts.serverEgressAllow]);
    env.LOCAL_SANDBOX_EGRESS_EXTERNAL = b.egressExternal;
  }
  // A create's own limits (Tier 3+), only when they are enforced: lenient ignores them, as it
  // always did. networkBlockAll wins over networkAllowList (network-limits.mdx).
  if (b.sandboxNetwork !== 'enforce' || !network) return env;
  if (network.networkBlockAll) env.LOCAL_SANDBOX_NET_BLOCK_ALL = '1';
  else if (network.networkAllowList?.trim()) {
    // Lenient creates are not validated: entries that are no IPv4 CIDR allow nothing.
    const rules = network.networkAllowList.split(',').flatMap((entry) => {
      try {
        return parseNetworkAllowList(entry);
      } catch {
        return [];
      }
    });
    env.LOCAL_SANDBOX_NET_ALLOW = shimRules(rules) || 'none';
  }
  return env;
}

/** What `record.json` holds: the record, without what belongs to the running server. */
export interface SandboxRecord {
  v: 1;
  id: string;
  seq: number;
  name: string;
  createdAt: string;
  labels: Record<string, string>;
  params: CreateParams;
  autoStopInterval: number;
  autoArchiveInterval: number;
  autoDeleteInterval: number;
  state: SandboxState;
  desiredState: DesiredState;
  errorReason?: string;
  recoverable: boolean;
  markedForDestroy: boolean;
  runningMs: number;
  previewToken: string;
  /** made from a snapshot: what it keeps of it */
  image?: SandboxImage;
}

export class LocalSandbox implements ProcessHost {
  readonly id: string;
  readonly seq: number;
  /** renamed `DESTROYED_<name>_<ms>` when a delete marks it (lifecycle 'daytona'), as Daytona does */
  name: string;
  readonly createdAt: Date;
  updatedAt: Date;
  lastActivity: number;
  state: SandboxState = 'started';
  desiredState: DesiredState = 'started';
  errorReason: string | undefined;
  /** Daytona's `recover` works only on a sandbox whose error the runner reported as recoverable */
  recoverable = false;
  /** a delete was accepted (lifecycle 'daytona'): still listed and gettable until it is destroyed */
  markedForDestroy = false;
  /** an errored sandbox marked for destroy: Daytona answers 404 for it at once */
  hidden = false;
  /** toolbox and preview requests still open: the proxy counts them as activity while they last */
  openRequests = 0;
  /** bumped by every state change, so a scheduled transition that was overtaken does nothing */
  transition = 0;
  labels: Record<string, string>;
  readonly params: CreateParams;
  /** the snapshot it was made from, as it was then */
  readonly image: SandboxImage | undefined;
  autoStopInterval: number;
  autoArchiveInterval: number;
  autoDeleteInterval: number;
  readonly previewToken: string;
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
  private persisted = '';
  private sessionSeq = 0;
  private readonly opts: StoreOptions;

  /** `restored`: the record a previous server wrote (the sandbox comes back `stopped`: no process survives).
   * `image`: the snapshot a new sandbox is made from (its home is filled by the store, sandboxes.ts). */
  constructor(seq: number, params: CreateParams, opts: StoreOptions, restored?: SandboxRecord, image?: SandboxImage) {
    this.id = restored?.id ?? randomUUID();
    this.seq = seq;
    this.name = restored?.name ?? (params.name || this.id);
    this.params = params;
    this.image = restored ? restored.image : image;
    this.opts = opts;
    this.labels = { ...(restored?.labels ?? params.labels) };
    this.createdAt = restored ? new Date(restored.createdAt) : new Date();
    this.updatedAt = restored ? new Date() : this.createdAt;
    this.lastActivity = Date.now();
    this.previewToken = restored?.previewToken ?? randomBytes(16).toString('hex');
    // Daytona's defaults: auto-stop after 15 idle minutes, archive after 7 days, never auto-delete.
    this.autoStopInterval = restored?.autoStopInterval ?? params.autoStopInterval ?? 15;
    this.autoArchiveInterval = restored?.autoArchiveInterval ?? params.autoArchiveInterval ?? 7 * 24 * 60;
    this.autoDeleteInterval = restored?.autoDeleteInterval ?? params.autoDeleteInterval ?? -1;
    this.dir = path.join(opts.root, 'sandboxes', this.id);
    this.homeDir = path.join(this.dir, 'home');
    this.workDir = path.join(this.homeDir, this.image?.workDir ?? 'workspace');
    this.tmpDir = path.join(this.dir, 'tmp');
    this.portsDir = path.join(this.dir, '.ports');
    this.sessionsDir = path.join(this.dir, '.daytona', 'sessions');
    this.makeFolders();
    if (restored) {
      const running: SandboxState[] = ['started', 'starting', 'stopping', 'creating'];
      this.state = running.includes(restored.state) ? 'stopped' : restored.state;
      this.desiredState = this.state === 'stopped' ? 'stopped' : restored.desiredState;
      this.errorReason = restored.errorReason;
      this.recoverable = restored.recoverable;
      this.runningMs = restored.runningMs;
      this.runningSince = undefined;
      this.stoppedAt = this.state === 'stopped' ? Date.now() : undefined;
    } else {
      this.runningSince = Date.now();
    }
  }

  /** Writes the record beside the sandbox's folders (atomically: a crash leaves the old or the new). */
  persist(): void {
    const record: SandboxRecord = {
      v: 1,
      id: this.id,
      seq: this.seq,
      name: this.name,
      createdAt: this.createdAt.toISOString(),
      labels: { ...this.labels },
      params: this.params,
      autoStopInterval: this.autoStopInterval,
      autoArchiveInterval: this.autoArchiveInterval,
      autoDeleteInterval: this.autoDeleteInterval,
      state: this.state,
      desiredState: this.desiredState,
      ...(this.errorReason !== undefined ? { errorReason: this.errorReason } : {}),
      recoverable: this.recoverable,
      markedForDestroy: this.markedForDestroy,
      runningMs: this.runningTotalMs(Date.now()),
      previewToken: this.previewToken,
      ...(this.image ? { image: this.image } : {}),
    };
    const text = JSON.stringify(record);
    if (text === this.persisted) return;
    try {
      const file = path.join(this.dir, 'record.json');
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
      this.persisted = text;
    } catch {
      // Its folder is being removed (a destroy): nothing to keep.
    }
  }

  makeFolders(): void {
    for (const d of [this.workDir, path.join(this.homeDir, '.npm-global', 'bin'), this.tmpDir, this.portsDir, this.sessionsDir]) {
      mkdirSync(d, { recursive: true });
    }
  }

  /** The environment of every sandbox process (processEnvFor): the snapshot's ENV if it was made from
   * one, then the create's `env`, then a call's `extra`. */
  processEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return processEnvFor(
      { markerId: this.id, homeDir: this.homeDir, tmpDir: this.tmpDir, portsDir: this.portsDir },
      { sandbox: { id: this.id, user: this.params.user ?? 'daytona' }, imageEnv: this.image?.env, env: [this.params.env, extra], network: this.params },
      this.opts,
    );
  }

  /** What the sandbox holds of an organization's quota while it holds anything. */
  get resources(): Resources {
    if (this.image) return { ...this.image.resources };
    return {
      cpu: this.params.cpu ?? DEFAULT_RESOURCES.cpu,
      memory: this.params.memory ?? DEFAULT_RESOURCES.memory,
      disk: this.params.disk ?? DEFAULT_RESOURCES.disk,
    };
  }

  /** A toolbox or preview request is activity; with autoStopActivity 'requests' (Daytona's proxy
   * refreshes the activity while a request lasts) until it ends, else at its start only. */
  trackRequest(ended: { once(event: 'close', cb: () => void): unknown }): void {
    this.touch();
    if (this.opts.behaviour.autoStopActivity !== 'requests') return;
    this.openRequests++;
    let done = false;
    ended.once('close', () => {
      if (done) return;
      done = true;
      this.openRequests--;
      this.touch();
    });
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
    if (this.sessions.has(id)) throw daemonError(409, `session ${id} already exists`, undefined, { message: 'conflict: session already exists' });
    const session = new Session(id, path.join(this.sessionsDir, String(++this.sessionSeq)), this, this.opts.behaviour.sessions);
    this.sessions.set(id, session);
    return session;
  }

  session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw daemonError(404, `session ${id} not found`, 'PROCESS_NOT_FOUND', { message: 'not found: session not found' });
    return s;
  }

  /** Drops every session (their processes are already dead, or are killed now). */
  forgetSessions(): void {
    const gone = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of gone) {
      s.kill();
      void s.cancel();
    }
  }

  /** Kills every process of the sandbox: sessions, commands, and strays that left their group.
   * `forgetSessions: false` keeps the dead sessions listed, their commands ended with 137, as a
   * daemon that survived its processes would; stop and delete forget them, as a restarted one does. */
  async killProcesses(forgetSessions = true): Promise<void> {
    for (const s of this.sessions.values()) s.kill();
    if (forgetSessions) {
      const gone = [...this.sessions.values()];
      this.sessions.clear();
      await Promise.all(gone.map((s) => s.cancel()));
    }
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
    const b = this.opts.behaviour;
    const desiredState =
      b.lifecycle === 'daytona'
        ? this.desiredState
        : this.state === 'destroyed'
          ? 'destroyed'
          : this.state === 'started'
            ? 'started'
            : 'stopped';
    return {
      id: this.id,
      organizationId: 'local',
      name: this.name,
      snapshot: this.image?.snapshotName ?? p.snapshot,
      user: p.user ?? 'daytona',
      env: { ...p.env },
      labels: { ...this.labels },
      public: p.public ?? false,
      networkBlockAll: p.networkBlockAll ?? false,
      networkAllowList: p.networkAllowList,
      target: p.target ?? 'local',
      cpu: this.resources.cpu,
      gpu: p.gpu ?? 0,
      memory: this.resources.memory,
      disk: this.resources.disk,
      state: this.state,
      desiredState,
      errorReason: this.errorReason,
      recoverable: this.recoverable,
      backupState: 'None',
      autoStopInterval: this.autoStopInterval,
      autoArchiveInterval: this.autoArchiveInterval,
      autoDeleteInterval: this.autoDeleteInterval,
      buildInfo: p.buildInfo,
      createdAt: this.createdAt.toISOString(),
      updatedAt: this.updatedAt.toISOString(),
      lastActivityAt: new Date(this.lastActivity).toISOString(),
      sandboxClass: 'container',
      daemonVersion: b.daemon === 'v0.190' ? 'v0.190.0' : 'local',
      toolboxProxyUrl: `${baseUrl}/toolbox`,
    };
  }
}
