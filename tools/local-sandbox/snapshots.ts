// Snapshots: Daytona's `POST /snapshots` and what follows, on this machine. The local server has one
// "image", this machine, so a snapshot is a template home folder: its build runs the Dockerfile's RUN
// steps with bash in that folder, with the environment a sandbox's processes get, and a sandbox made
// from it starts with its home as a copy of the template (hard links for large files, see copyTemplate).
// This module is the one owner of snapshot state; the routes (snapshot-routes.ts) only call it.
//
// Layout of one snapshot, `<root>/snapshots/<id>/`:
//   home/         the template: HOME of every build step (with home/workspace and home/.npm-global as a
//                 sandbox has them), copied into each sandbox made from the snapshot
//   tmp/, .ports/ TMPDIR and the port shim's mappings of the build's processes
//   build.log     the build's log, `Step N/M : ...` lines and each step's output
//   record.json   the snapshot's record, rewritten on every change: a restarted server lists it again
//
// States as Daytona's snapshot manager moves them (apps/api/src/sandbox/managers/snapshot.manager.ts
// 1196-1293): a build-info snapshot goes `pending` -> `building` -> `active`, or `build_failed` with
// the build's error as errorReason (processBuildOnRunner 1170-1194); an image-name snapshot `pending` ->
// `pulling` -> `active`.
import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  appendFileSync,
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DockerfileError, expandWord, parseDockerfile, recordedEntrypoint, SUPPORTED_INSTRUCTIONS } from './dockerfile.ts';
import type { ImageEnvEntry, Instruction } from './dockerfile.ts';
import { DaytonaHttpError } from './http-util.ts';
import { checkPerSandboxLimits } from './lifecycle.ts';
import { BASH, exitCodeOf, killGroup, spawnShell, sweepMarkedProcesses } from './proc.ts';
import { processEnvFor } from './sandbox.ts';
import type { ProcessHome, SandboxImage, StoreOptions } from './sandbox.ts';

/** apps/api/src/sandbox/enums/snapshot-state.enum.ts */
export type SnapshotState = 'pending' | 'building' | 'pulling' | 'active' | 'inactive' | 'error' | 'build_failed' | 'removing';

/** The states in which a snapshot changes no more by itself (the SDK's `create` waits for one of them). */
const SETTLED: readonly SnapshotState[] = ['active', 'inactive', 'error', 'build_failed'];

/** `POST /snapshots`, checked for types by the route. */
export interface CreateSnapshotParams {
  name: string;
  imageName?: string;
  entrypoint?: string[];
  cpu?: number;
  gpu?: number;
  memory?: number;
  disk?: number;
  buildInfo?: { dockerfileContent: string; contextHashes?: string[] };
  regionId?: string;
}

interface BuildInfoRecord {
  dockerfileContent: string;
  contextHashes: string[];
  /** Daytona's key for a build, `daytona-<sha256 of the Dockerfile and context hashes>:daytona`
   * (apps/api/src/sandbox/entities/build-info.entity.ts generateBuildInfoHash) */
  snapshotRef: string;
  createdAt: string;
}

/** What `record.json` holds. */
interface SnapshotRecord {
  v: 1;
  id: string;
  seq: number;
  name: string;
  imageName: string;
  buildInfo?: BuildInfoRecord;
  regionId: string;
  state: SnapshotState;
  errorReason?: string;
  cpu: number;
  gpu: number;
  mem: number;
  disk: number;
  entrypoint: string[] | null;
  /** the Dockerfile's ENV, as written: each sandbox expands it in its own environment */
  env: ImageEnvEntry[];
  /** the last WORKDIR, relative to the template's home */
  workDir: string;
  /** bytes of the template's files, once built */
  sizeBytes: number | null;
  createdAt: string;
  updatedAt: string;
  lastUsedAt: string | null;
}

/** Files from this size on are hard-linked into a sandbox; smaller ones are copied (copyTemplate). */
export const LINK_MIN_BYTES = 64 * 1024;

/** The 400 of a bad name (snapshot.service.ts validateSnapshotName, 121-127). */
const NAME_PATTERN = /^[a-zA-Z0-9_.\-:]+(\/[a-zA-Z0-9_.\-:]+)*(@sha256:[a-f0-9]{64})?$/;

export class LocalSnapshot extends EventEmitter {
  readonly id: string;
  readonly seq: number;
  readonly name: string;
  readonly imageName: string;
  readonly buildInfo: BuildInfoRecord | undefined;
  readonly regionId: string;
  state: SnapshotState;
  errorReason: string | undefined;
  readonly cpu: number;
  readonly gpu: number;
  readonly mem: number;
  readonly disk: number;
  readonly entrypoint: string[] | null;
  env: ImageEnvEntry[];
  workDir: string;
  sizeBytes: number | null;
  readonly createdAt: Date;
  updatedAt: Date;
  lastUsedAt: Date | null;
  readonly dir: string;
  readonly home: ProcessHome;
  readonly logFile: string;
  /** aborted when the snapshot is deleted or the server stops: its build ends at once */
  readonly abort = new AbortController();

  constructor(record: SnapshotRecord, root: string) {
    super();
    // One listener per client following the build log: any number of them.
    this.setMaxListeners(0);
    this.id = record.id;
    this.seq = record.seq;
    this.name = record.name;
    this.imageName = record.imageName;
    this.buildInfo = record.buildInfo;
    this.regionId = record.regionId;
    this.state = record.state;
    this.errorReason = record.errorReason;
    this.cpu = record.cpu;
    this.gpu = record.gpu;
    this.mem = record.mem;
    this.disk = record.disk;
    this.entrypoint = record.entrypoint;
    this.env = record.env;
    this.workDir = record.workDir;
    this.sizeBytes = record.sizeBytes;
    this.createdAt = new Date(record.createdAt);
    this.updatedAt = new Date(record.updatedAt);
    this.lastUsedAt = record.lastUsedAt ? new Date(record.lastUsedAt) : null;
    this.dir = path.join(root, 'snapshots', this.id);
    this.home = { markerId: this.id, homeDir: path.join(this.dir, 'home'), tmpDir: path.join(this.dir, 'tmp'), portsDir: path.join(this.dir, '.ports') };
    this.logFile = path.join(this.dir, 'build.log');
  }

  get settled(): boolean {
    return SETTLED.includes(this.state);
  }

  /** The folders of a fresh template: a sandbox home's (sandbox.ts makeFolders), so a build's `npm i -g`
   * and its work dir are where a sandbox's are. */
  makeFolders(): void {
    for (const d of [path.join(this.home.homeDir, 'workspace'), path.join(this.home.homeDir, '.npm-global', 'bin'), this.home.tmpDir, this.home.portsDir]) {
      mkdirSync(d, { recursive: true });
    }
  }

  record(): SnapshotRecord {
    return {
      v: 1,
      id: this.id,
      seq: this.seq,
      name: this.name,
      imageName: this.imageName,
      ...(this.buildInfo ? { buildInfo: this.buildInfo } : {}),
      regionId: this.regionId,
      state: this.state,
      ...(this.errorReason !== undefined ? { errorReason: this.errorReason } : {}),
      cpu: this.cpu,
      gpu: this.gpu,
      mem: this.mem,
      disk: this.disk,
      entrypoint: this.entrypoint,
      env: this.env,
      workDir: this.workDir,
      sizeBytes: this.sizeBytes,
      createdAt: this.createdAt.toISOString(),
      updatedAt: this.updatedAt.toISOString(),
      lastUsedAt: this.lastUsedAt?.toISOString() ?? null,
    };
  }

  /** Writes record.json atomically (a crash leaves the old or the new). */
  persist(): void {
    try {
      const file = path.join(this.dir, 'record.json');
      writeFileSync(`${file}.tmp`, JSON.stringify(this.record()));
      renameSync(`${file}.tmp`, file);
    } catch {
      // Its folder is being removed (a delete): nothing to keep.
    }
  }

  /** The generated client's `SnapshotDto` (apps/api/src/sandbox/dto/snapshot.dto.ts fromSnapshot). */
  toDto(): Record<string, unknown> {
    const b = this.buildInfo;
    return {
      id: this.id,
      organizationId: 'local',
      general: false,
      name: this.name,
      imageName: this.imageName,
      state: this.state,
      // Daytona's size is in GB (the runner's `sizeGB`: bytes / 1024^3, apps/runner/pkg/docker/snapshot_sandbox.go 140)
      size: this.sizeBytes === null ? null : this.sizeBytes / 1024 ** 3,
      entrypoint: this.entrypoint,
      cpu: this.cpu,
      gpu: this.gpu,
      mem: this.mem,
      disk: this.disk,
      errorReason: this.errorReason ?? null,
      createdAt: this.createdAt.toISOString(),
      updatedAt: this.updatedAt.toISOString(),
      lastUsedAt: this.lastUsedAt?.toISOString() ?? null,
      buildInfo: b
        ? { dockerfileContent: b.dockerfileContent, contextHashes: b.contextHashes, createdAt: b.createdAt, updatedAt: b.createdAt, snapshotRef: b.snapshotRef }
        : undefined,
      regionIds: [this.regionId],
      initialRunnerId: 'local',
      ref: b ? b.snapshotRef : this.imageName,
      sourceSandboxId: null,
      sandboxClass: 'container',
    };
  }
}

/** A build step that failed: its message is the snapshot's errorReason. */
class BuildFailure extends Error {}

export class SnapshotStore {
  private readonly byId = new Map<string, LocalSnapshot>();
  private seq = 0;
  private readonly opts: StoreOptions;
  private readonly dir: string;

  constructor(opts: StoreOptions) {
    this.opts = opts;
    this.dir = path.join(opts.root, 'snapshots');
    mkdirSync(this.dir, { recursive: true });
    this.restore();
  }

  /** The snapshots a previous server left under this root. A build it did not finish cannot go on (its
   * processes died with it): it is `build_failed`, and says why. */
  private restore(): void {
    for (const id of readdirSync(this.dir)) {
      let record: SnapshotRecord;
      try {
        record = JSON.parse(readFileSync(path.join(this.dir, id, 'record.json'), 'utf8')) as SnapshotRecord;
      } catch {
        continue;
      }
      if (record.v !== 1 || record.id !== id) continue;
      if (record.state === 'removing') {
        rmSync(path.join(this.dir, id), { recursive: true, force: true, maxRetries: 3 });
        continue;
      }
      const snap = new LocalSnapshot(record, this.opts.root);
      this.seq = Math.max(this.seq, record.seq);
      this.byId.set(id, snap);
      void sweepMarkedProcesses(id);
      if (!snap.settled) this.fail(snap, 'Build interrupted: the local sandbox server restarted during the build');
    }
  }

  all(): LocalSnapshot[] {
    return [...this.byId.values()];
  }

  /** By id or by name, as the API's snapshot guards look one up; unknown: their 404
   * (guards/snapshot-read-access.guard.ts, snapshot.service.ts getSnapshotByName 555-573). */
  find(idOrName: string): LocalSnapshot {
    const snap = this.byId.get(idOrName) ?? this.all().find((s) => s.name === idOrName);
    if (!snap) throw new DaytonaHttpError(404, `Snapshot with name ${idOrName} not found`);
    return snap;
  }

  /** `POST /snapshots`: the service's checks (snapshot.service.ts createFromPull 162-270, createFromBuildInfo
   * 272-420), then a `pending` record, answered at once, and its build started in the background. */
  create(params: CreateSnapshotParams): LocalSnapshot {
    if (!NAME_PATTERN.test(params.name)) {
      throw new DaytonaHttpError(400, 'Invalid snapshot name format. May contain letters, digits, dots, colons, and dashes');
    }
    if (!params.buildInfo) {
      const imageError = imageNameError(params.imageName ?? '');
      if (imageError) throw new DaytonaHttpError(400, imageError);
    }
    if (this.opts.behaviour.lifecycle === 'daytona') {
      // validateOrganizationQuotas (610-671): only the values given are checked.
      checkPerSandboxLimits({ cpu: params.cpu ?? 0, memory: params.memory ?? 0, disk: params.disk ?? 0 });
    }
    if (this.all().some((s) => s.name === params.name)) {
      throw new DaytonaHttpError(409, `Snapshot with name "${params.name}" already exists for this organization`);
    }
    const now = new Date().toISOString();
    const b = params.buildInfo;
    const contextHashes = b?.contextHashes ?? [];
    const snap = new LocalSnapshot(
      {
        v: 1,
        id: randomUUID(),
        seq: ++this.seq,
        name: params.name,
        // an image-name snapshot keeps its image; a build has none (the entity's default, '')
        imageName: b ? '' : params.imageName!,
        ...(b
          ? {
              buildInfo: {
                dockerfileContent: b.dockerfileContent,
                contextHashes,
                snapshotRef: `daytona-${createHash('sha256').update(b.dockerfileContent + [...contextHashes].sort().join('')).digest('hex')}:daytona`,
                createdAt: now,
              },
            }
          : {}),
        regionId: params.regionId?.trim() || 'local',
        state: 'pending',
        cpu: params.cpu ?? 1,
        gpu: params.gpu ?? 0,
        mem: params.memory ?? 1,
        disk: params.disk ?? 3,
        entrypoint: b ? entrypointOf(b.dockerfileContent) : nonEmpty(params.entrypoint),
        env: [],
        workDir: 'workspace',
        sizeBytes: null,
        createdAt: now,
        updatedAt: now,
        lastUsedAt: null,
      },
      this.opts.root,
    );
    snap.makeFolders();
    writeFileSync(snap.logFile, '');
    this.byId.set(snap.id, snap);
    snap.persist();
    // After the answer, as the snapshot manager picks up a pending snapshot on its own cycle.
    setImmediate(() => {
      if (snap.abort.signal.aborted) return; // deleted before its build began
      const run = snap.buildInfo ? this.build(snap) : this.pull(snap);
      run.catch((err: unknown) => {
        this.opts.log(`warning: snapshot ${snap.name}: ${String(err)}`);
        if (!snap.settled && !snap.abort.signal.aborted) this.fail(snap, String(err));
      });
    });
    return snap;
  }

  /** `DELETE /snapshots/{id}`: gone at once (Daytona marks it `removing` and its manager removes it once
   * no runner holds it: snapshot.service.ts removeSnapshot 433-450, snapshot.manager.ts 970-982). A
   * build in progress is killed. Sandboxes made from it keep their files: theirs are copies and hard
   * links, which outlive the template. */
  async remove(snap: LocalSnapshot): Promise<void> {
    if (!this.byId.delete(snap.id)) return;
    snap.abort.abort();
    snap.emit('end');
    await sweepMarkedProcesses(snap.id);
    await rm(snap.dir, { recursive: true, force: true, maxRetries: 3 }).catch((err: unknown) => {
      this.opts.log(`warning: could not remove ${snap.dir}: ${String(err)}`);
    });
  }

  /** What `POST /sandbox` with `snapshot` takes from it, with the API's refusals (sandbox.service.ts
   * createFromSnapshot 471-511): by name, or by id; 400 when unknown or not `active`. */
  forSandbox(idOrName: string): { image: SandboxImage; templateHome: string; snapshot: LocalSnapshot } {
    const snap = this.all().find((s) => s.name === idOrName) ?? this.byId.get(idOrName);
    if (!snap) throw new DaytonaHttpError(400, `Snapshot ${idOrName} not found. Did you add it through the Daytona Dashboard?`);
    if (snap.state !== 'active') throw new DaytonaHttpError(400, `Snapshot ${idOrName} is ${snap.state}`);
    return {
      image: {
        snapshotId: snap.id,
        snapshotName: snap.name,
        env: snap.env.map((e) => ({ ...e })),
        workDir: snap.workDir,
        resources: { cpu: snap.cpu, memory: snap.mem, disk: snap.disk },
      },
      templateHome: snap.home.homeDir,
      snapshot: snap,
    };
  }

  /** A sandbox was made from it (snapshot.service.ts handleSandboxCreatedEvent 710-728). */
  markUsed(snap: LocalSnapshot): void {
    snap.lastUsedAt = new Date();
    snap.persist();
  }

  /**
   * The build log: what it holds now through `write`, then (`follow`) each new chunk until the build
   * settles, then `end`. The log is appended synchronously on this thread, so reading it and subscribing
   * in one go loses nothing in between. Returns the unsubscribe.
   */
  followLog(snap: LocalSnapshot, follow: boolean, write: (chunk: Buffer) => void, end: () => void): () => void {
    let text: Buffer;
    try {
      text = readFileSync(snap.logFile);
    } catch {
      text = Buffer.alloc(0);
    }
    if (text.length) write(text);
    if (!follow || snap.settled || !this.byId.has(snap.id)) {
      end();
      return () => undefined;
    }
    snap.on('log', write);
    snap.once('end', end);
    return () => {
      snap.off('log', write);
      snap.off('end', end);
    };
  }

  /** Server shutdown: builds in progress stop, `build_failed` with the reason (their processes die). */
  async shutdown(): Promise<void> {
    const building = this.all().filter((s) => !s.settled);
    for (const snap of building) {
      snap.abort.abort();
      this.fail(snap, 'Build interrupted: the local sandbox server stopped during the build');
    }
    await Promise.all(building.map((s) => sweepMarkedProcesses(s.id)));
  }

  // --- the build -------------------------------------------------------------------------------

  private setState(snap: LocalSnapshot, state: SnapshotState, errorReason?: string): void {
    snap.state = state;
    if (errorReason !== undefined) snap.errorReason = errorReason;
    // The manager sets lastUsedAt when a snapshot turns active (snapshot.manager.ts updateSnapshotState 1295-1313).
    if (state === 'active') snap.lastUsedAt = new Date();
    snap.updatedAt = new Date();
    snap.persist();
    if (snap.settled) snap.emit('end');
  }

  private fail(snap: LocalSnapshot, reason: string): void {
    this.log(snap, `ERROR: ${reason}\n`);
    this.setState(snap, 'build_failed', reason);
  }

  private log(snap: LocalSnapshot, text: string | Buffer): void {
    const chunk = typeof text === 'string' ? Buffer.from(text) : text;
    try {
      appendFileSync(snap.logFile, chunk);
    } catch {
      return; // deleted meanwhile
    }
    snap.emit('log', chunk);
  }

  /** An image-name snapshot: nothing to pull, the one image is this machine; an empty template. */
  private async pull(snap: LocalSnapshot): Promise<void> {
    this.setState(snap, 'pulling');
    snap.sizeBytes = templateBytes(snap.home.homeDir);
    this.setState(snap, 'active');
  }

  /**
   * Runs the Dockerfile's steps in the template. A build settles no sooner than `snapshotBuildMinMs`
   * after it began: Daytona's manager sees a build's end on its next check (check-snapshot-state, every
   * 10 s: snapshot.manager.ts 846-927), so `building` lasts seconds even for a trivial build, and the SDK
   * relies on that: it follows the build log only once a poll (one a second) has seen `building`
   * (sdk cjs/Snapshot.js create).
   */
  private async build(snap: LocalSnapshot): Promise<void> {
    const began = Date.now();
    this.setState(snap, 'building');
    let failure: string | undefined;
    try {
      await this.runSteps(snap, parseSteps(snap.buildInfo!.dockerfileContent));
    } catch (err) {
      if (!(err instanceof BuildFailure || err instanceof DockerfileError)) throw err;
      failure = err.message;
    }
    const signal = snap.abort.signal;
    const wait = began + this.opts.behaviour.snapshotBuildMinMs - Date.now();
    if (wait > 0) await sleep(wait, undefined, { signal, ref: false }).catch(() => undefined);
    if (signal.aborted) return;
    if (failure !== undefined) return this.fail(snap, failure);
    snap.sizeBytes = templateBytes(snap.home.homeDir);
    this.log(snap, `Successfully built ${snap.name}\n`);
    this.setState(snap, 'active');
  }

  private async runSteps(snap: LocalSnapshot, steps: Instruction[]): Promise<void> {
    const total = steps.length;
    const stepLine = (i: number): string => `Step ${i + 1}/${total} : ${steps[i]!.text}`;
    // Everything that cannot be built fails the build before a single step runs.
    const unsupported = steps.findIndex((s) => s.kind === 'unsupported' || (s.kind === 'FROM' && steps.indexOf(s) > 0));
    if (unsupported >= 0) {
      const s = steps[unsupported]!;
      this.log(snap, `${stepLine(unsupported)}\n`);
      throw new BuildFailure(
        s.kind === 'FROM'
          ? `${stepLine(unsupported)}: multi-stage builds (a second FROM) are not supported by the local sandbox server`
          : `${stepLine(unsupported)}: ${(s as { keyword: string }).keyword} is not supported by the local sandbox server (it builds ${SUPPORTED_INSTRUCTIONS.join(', ')})`,
      );
    }
    const home = snap.home.homeDir;
    const env: ImageEnvEntry[] = [];
    let cwd = path.join(home, 'workspace');
    for (let i = 0; i < total; i++) {
      if (snap.abort.signal.aborted) return;
      const step = steps[i]!;
      this.log(snap, `${stepLine(i)}\n`);
      switch (step.kind) {
        case 'FROM':
          this.log(snap, ` ---> ${step.image}: the local sandbox server has one image, this machine\n`);
          break;
        case 'RUN': {
          const code = await this.runStep(snap, step.command, env, cwd);
          if (snap.abort.signal.aborted) return;
          // The reason names the step, not all of it: a step can be kilobytes long (a file passed in base64).
          if (code !== 0) throw new BuildFailure(`The command at ${clip(stepLine(i), 300)} returned a non-zero code: ${code}`);
          break;
        }
        case 'ENV':
          env.push(...step.entries);
          // Expanded once now, so that a substitution this server cannot read fails the build here
          // rather than every process of every sandbox made from the snapshot.
          processEnvFor(snap.home, { imageEnv: env }, this.opts);
          break;
        case 'WORKDIR': {
          const dir = path.resolve(cwd, expandWord(step.word, processEnvFor(snap.home, { imageEnv: env }, this.opts)));
          const rel = path.relative(home, dir);
          if (rel.startsWith('..') || path.isAbsolute(rel)) {
            throw new BuildFailure(`${stepLine(i)}: ${dir} is outside the snapshot's home: on the local sandbox server a snapshot is a home folder, so WORKDIR must be under $HOME`);
          }
          mkdirSync(dir, { recursive: true });
          cwd = dir;
          break;
        }
        case 'ENTRYPOINT':
        case 'CMD':
          // Recorded (the snapshot's `entrypoint`); nothing starts a container here.
          break;
      }
    }
    snap.env = env;
    snap.workDir = path.relative(home, cwd) || '.';
  }

  /** One RUN: bash in its own process group, output into the log. The step ends when its command does;
   * what it left running dies then, as with the step's container in a Docker build. */
  private runStep(snap: LocalSnapshot, command: string | string[], env: ImageEnvEntry[], cwd: string): Promise<number> {
    // The exec form runs its argv without a shell, as Docker does: bash only `exec`s it.
    const args = typeof command === 'string' ? ['-c', command] : ['-c', 'exec "$@"', BASH, ...command];
    const child = spawnShell(args, { cwd, env: processEnvFor(snap.home, { imageEnv: env }, this.opts), stdio: ['ignore', 'pipe', 'pipe'] });
    const onAbort = (): void => killGroup(child.pid);
    snap.abort.signal.addEventListener('abort', onAbort, { once: true });
    child.stdout!.on('data', (d: Buffer) => this.log(snap, d));
    child.stderr!.on('data', (d: Buffer) => this.log(snap, d));
    return new Promise((resolve) => {
      let code = 1;
      child.once('error', (err) => {
        this.log(snap, `${err.message}\n`);
        resolve(127);
      });
      child.once('exit', (c, signal) => {
        code = exitCodeOf(c, signal);
        killGroup(child.pid);
      });
      child.once('close', () => {
        snap.abort.signal.removeEventListener('abort', onAbort);
        void sweepMarkedProcesses(snap.id).then(() => resolve(code));
      });
    });
  }
}

/** The Dockerfile's instructions; a Dockerfile with no FROM first is refused as Docker refuses it. */
function parseSteps(content: string): Instruction[] {
  const steps = parseDockerfile(content);
  if (steps[0]?.kind !== 'FROM') throw new DockerfileError('no build stage in current context: the Dockerfile must begin with FROM');
  return steps;
}

function entrypointOf(dockerfile: string): string[] | null {
  try {
    return recordedEntrypoint(parseDockerfile(dockerfile));
  } catch {
    return ['sleep', 'infinity']; // the build will say what is wrong with it
  }
}

/** snapshot.service.ts processEntrypoint: empty entries dropped, nothing left is none. */
function nonEmpty(entrypoint: string[] | undefined): string[] | null {
  const kept = (entrypoint ?? []).filter((e) => e.trim().length > 0);
  return kept.length ? kept : null;
}

/** snapshot.service.ts validateImageName (95-119), with its messages. */
function imageNameError(name: string): string | undefined {
  if (name.includes('@sha256:')) {
    const [image, digest] = name.split('@sha256:');
    return !image || !digest || !/^[a-f0-9]{64}$/.test(digest) ? 'Invalid digest format. Must be image@sha256:64_hex_characters' : undefined;
  }
  if (!name.includes(':') || /:\s*$/.test(name)) return 'Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)';
  if (name.endsWith(':latest')) return 'Images with tag ":latest" are not allowed';
  if (!NAME_PATTERN.test(name)) {
    return 'Invalid image name format. Must be lowercase, may contain digits, dots, dashes, and single slashes between components';
  }
  return undefined;
}

/** Bytes of the regular files under `dir` (what the snapshot's `size` reports). */
function templateBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += templateBytes(p);
    else if (entry.isFile()) total += lstatSync(p).size;
  }
  return total;
}

/**
 * A sandbox's home from a snapshot's template, about as fast as an empty create: the filesystem here
 * has no reflinks (ext4), so files of LINK_MIN_BYTES and more are hard-linked (one inode shared by the
 * template and every sandbox made from it), smaller ones are copied, so a program that rewrites a small
 * file in place (a config, a lock file) cannot change the template or another sandbox. Directories are
 * made anew, symlinks stay symlinks (with the same target), anything else (sockets, FIFOs) is left out.
 * The price: a large file written IN PLACE in a sandbox (not replaced by a new file, as npm, git and
 * editors do) changes the template and every sandbox made from it.
 */
export function copyTemplate(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dest = path.join(to, entry.name);
    if (entry.isDirectory()) copyTemplate(src, dest);
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(src), dest);
    else if (entry.isFile()) {
      if (lstatSync(src).size >= LINK_MIN_BYTES) {
        try {
          linkSync(src, dest);
          continue;
        } catch {
          // another filesystem, or too many links: a copy does as well
        }
      }
      copyFileSync(src, dest);
    }
  }
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
