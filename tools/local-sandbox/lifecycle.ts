// Daytona's life-cycle rules as decisions with no side effects: may this sandbox be started, stopped,
// deleted, recovered; does a new one fit the organization's quota. Each throws the error Daytona's API
// answers, with its message (apps/api/src/sandbox/services/sandbox.service.ts at v0.190.0, b5a5d9e).
// The store (sandboxes.ts) calls them under lifecycle 'daytona' and carries the changes out.
import { DaytonaHttpError } from './http-util.ts';

export type SandboxState =
  | 'creating'
  | 'starting'
  | 'started'
  | 'stopping'
  | 'stopped'
  | 'error'
  | 'build_failed'
  | 'destroying'
  | 'destroyed';

export type DesiredState = 'started' | 'stopped' | 'destroyed';

/** What the rules read of a sandbox. */
export interface LifecycleView {
  state: SandboxState;
  desiredState: DesiredState;
  recoverable: boolean;
}

/** apps/api/src/exceptions/state-change-in-progress.exception.ts */
export function stateChangeInProgress(): DaytonaHttpError {
  return new DaytonaHttpError(409, 'Sandbox state change in progress');
}

const ERRORED: readonly SandboxState[] = ['error', 'build_failed'];

export function isErrored(sb: LifecycleView): boolean {
  return ERRORED.includes(sb.state);
}

/** Daytona's `pending`: a state change is under way. An errored sandbox is never pending
 * (sandbox.entity.ts enforceInvariants). */
export function isPending(sb: LifecycleView): boolean {
  return !isErrored(sb) && sb.state !== sb.desiredState;
}

/** sandbox.service.ts `assertSandboxNotErrored` */
function assertNotErrored(sb: LifecycleView): void {
  if (isErrored(sb)) throw new DaytonaHttpError(400, 'Sandbox is in an errored state');
}

/** sandbox.service.ts `destroy`: only a state change in progress refuses a delete. */
export function checkDelete(sb: LifecycleView): void {
  if (isPending(sb)) throw stateChangeInProgress();
}

/** sandbox.service.ts `start`: `true` when a start must happen, `false` when it is started already. */
export function checkStart(sb: LifecycleView): boolean {
  if (sb.state === 'started' && sb.desiredState === 'started') return false;
  assertNotErrored(sb);
  if (sb.state !== sb.desiredState) throw stateChangeInProgress();
  if (sb.state !== 'stopped') throw new DaytonaHttpError(400, 'Sandbox is not in valid state');
  return true;
}

/** sandbox.service.ts `stop` */
export function checkStop(sb: LifecycleView): void {
  assertNotErrored(sb);
  if (sb.state !== sb.desiredState) throw stateChangeInProgress();
  if (sb.state !== 'started') throw new DaytonaHttpError(400, 'Sandbox is not in a stoppable state');
}

/** sandbox.service.ts `recover` */
export function checkRecover(sb: LifecycleView): void {
  if (!sb.recoverable) throw new DaytonaHttpError(400, 'Sandbox is not in a recoverable state');
  if (sb.state !== 'error') throw new DaytonaHttpError(400, 'Sandbox must be in error state to recover');
}

// --- resources and quotas ---------------------------------------------------------------------

export interface Resources {
  cpu: number;
  /** GiB */
  memory: number;
  /** GiB */
  disk: number;
}

/** A sandbox made without resources (from the default snapshot): 1 vCPU, 1 GiB, 3 GiB
 * (apps/docs/src/content/docs/en/sandboxes.mdx, "Resources"). */
export const DEFAULT_RESOURCES: Resources = { cpu: 1, memory: 1, disk: 3 };

/** Per-sandbox maxima of an organization (sandboxes.mdx, "Resources": 4 vCPU, 8 GiB, 10 GiB). */
export const MAX_PER_SANDBOX: Resources = { cpu: 4, memory: 8, disk: 10 };

/** States whose sandboxes hold CPU and memory, and those that hold disk
 * (apps/api/src/organization/constants/sandbox-states-consuming-{compute,disk}.constant.ts). */
const CONSUMING_COMPUTE: readonly SandboxState[] = ['creating', 'starting', 'started', 'stopping'];
const CONSUMING_DISK: readonly SandboxState[] = [...CONSUMING_COMPUTE, 'stopped'];

export interface Quota {
  cpu?: number;
  memory?: number;
  disk?: number;
}

const UPGRADE_TIER_MESSAGE =
  "To increase concurrency limits, upgrade your organization's Tier by visiting https://app.daytona.io/dashboard/limits.";
const ARCHIVE_SANDBOXES_MESSAGE = 'Consider archiving your unused Sandboxes to free up available storage.';
const PER_SANDBOX_LIMIT_MESSAGE =
  'Need higher resource limits per-sandbox? Contact us at support@daytona.io and let us know about your use case.';

/** sandbox.service.ts `validateOrganizationQuotas`, per-sandbox part. */
export function checkPerSandboxLimits(need: Resources): void {
  if (need.cpu > MAX_PER_SANDBOX.cpu) {
    throw new DaytonaHttpError(400, `CPU request ${need.cpu} exceeds maximum allowed per sandbox (${MAX_PER_SANDBOX.cpu}).\n${PER_SANDBOX_LIMIT_MESSAGE}`);
  }
  if (need.memory > MAX_PER_SANDBOX.memory) {
    throw new DaytonaHttpError(400, `Memory request ${need.memory}GB exceeds maximum allowed per sandbox (${MAX_PER_SANDBOX.memory}GB).\n${PER_SANDBOX_LIMIT_MESSAGE}`);
  }
  if (need.disk > MAX_PER_SANDBOX.disk) {
    throw new DaytonaHttpError(400, `Disk request ${need.disk}GB exceeds maximum allowed per sandbox (${MAX_PER_SANDBOX.disk}GB).\n${PER_SANDBOX_LIMIT_MESSAGE}`);
  }
}

/**
 * sandbox.service.ts `validateOrganizationQuotas`, totals part: what the other sandboxes hold, plus what
 * this one asks for, must stay within each quota; checked in the order CPU, memory, disk.
 * `need` is what the sandbox will hold: all three for a create or start, disk only for a recover to
 * `stopped`.
 */
export function checkQuota(
  quota: Quota,
  others: Iterable<{ state: SandboxState; resources: Resources }>,
  need: Partial<Resources>,
): void {
  let cpu = 0;
  let memory = 0;
  let disk = 0;
  for (const sb of others) {
    if (CONSUMING_COMPUTE.includes(sb.state)) {
      cpu += sb.resources.cpu;
      memory += sb.resources.memory;
    }
    if (CONSUMING_DISK.includes(sb.state)) disk += sb.resources.disk;
  }
  if (quota.cpu !== undefined && cpu + (need.cpu ?? 0) > quota.cpu) {
    throw new DaytonaHttpError(400, `Total CPU limit exceeded. Maximum allowed: ${quota.cpu}.\n${UPGRADE_TIER_MESSAGE}`);
  }
  if (quota.memory !== undefined && memory + (need.memory ?? 0) > quota.memory) {
    throw new DaytonaHttpError(400, `Total memory limit exceeded. Maximum allowed: ${quota.memory}GiB.\n${UPGRADE_TIER_MESSAGE}`);
  }
  if (quota.disk !== undefined && disk + (need.disk ?? 0) > quota.disk) {
    throw new DaytonaHttpError(
      400,
      `Total disk limit exceeded. Maximum allowed: ${quota.disk}GiB.\n${ARCHIVE_SANDBOXES_MESSAGE}\n${UPGRADE_TIER_MESSAGE}`,
    );
  }
}

export function hasQuota(quota: Quota): boolean {
  return quota.cpu !== undefined || quota.memory !== undefined || quota.disk !== undefined;
}
