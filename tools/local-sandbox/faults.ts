// Fault injection, per server instance, for tests that must see the project survive a flaky Daytona.
// Set with `POST /admin/faults` (merged key by key), cleared with `DELETE /admin/faults`.
// Each counted fault fires on the next `count` matching requests and then disarms itself.
import { DaytonaHttpError } from './http-util.ts';

/** How a failing request fails: an HTTP status in Daytona's error shape, a connection reset before any
 * answer (`reset`), a request that is never answered (`hang`), or, for creates only, `lost`: the
 * sandbox IS created but the connection is reset, as when an answer is lost on the way back. */
export type FailureMode = '400' | '429' | '500' | '502' | '503' | '504' | 'reset' | 'hang' | 'lost';

export interface CountedFailure {
  count: number;
  mode?: FailureMode;
}

export interface MatchedFailure extends CountedFailure {
  /** regular expression tested against the toolbox path after `/toolbox/<id>`, e.g. `^/process/execute` */
  match?: string;
}

export interface HangExec {
  count: number;
  /** regular expression tested against the command text of `process/execute` and session commands */
  match?: string;
}

export interface FaultConfig {
  createFailures?: CountedFailure;
  toolboxFailures?: MatchedFailure;
  /** any control-plane call other than create (`/api/...`), `match` tested against `METHOD /path` */
  apiFailures?: MatchedFailure;
  /** fixed latency added before answering */
  delayMs?: { create?: number; toolbox?: number; api?: number };
  /** matching commands are replaced by one that never ends (until killed, timed out or deleted) */
  hangExec?: HangExec;
}

const MODES = new Set<string>(['400', '429', '500', '502', '503', '504', 'reset', 'hang', 'lost']);

export function parseFaultConfig(value: unknown): FaultConfig {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new DaytonaHttpError(400, 'faults must be a JSON object');
  const v = value as Record<string, unknown>;
  const out: FaultConfig = {};
  for (const key of Object.keys(v)) {
    if (!['createFailures', 'toolboxFailures', 'apiFailures', 'delayMs', 'hangExec'].includes(key)) {
      throw new DaytonaHttpError(400, `unknown fault "${key}"`);
    }
  }
  if (v.createFailures !== undefined) out.createFailures = parseCounted(v.createFailures, 'createFailures', false);
  if (v.toolboxFailures !== undefined) out.toolboxFailures = parseCounted(v.toolboxFailures, 'toolboxFailures', true);
  if (v.apiFailures !== undefined) out.apiFailures = parseCounted(v.apiFailures, 'apiFailures', true);
  if (v.hangExec !== undefined) {
    const h = parseCounted(v.hangExec, 'hangExec', true);
    out.hangExec = { count: h.count, ...(h.match !== undefined ? { match: h.match } : {}) };
  }
  if (v.delayMs !== undefined) {
    const d = v.delayMs as Record<string, unknown>;
    if (!d || typeof d !== 'object') throw new DaytonaHttpError(400, 'delayMs must be an object');
    out.delayMs = {};
    for (const k of ['create', 'toolbox', 'api'] as const) {
      const n = d[k];
      if (n === undefined) continue;
      if (typeof n !== 'number' || !(n >= 0)) throw new DaytonaHttpError(400, `delayMs.${k} must be a number >= 0`);
      out.delayMs[k] = n;
    }
  }
  return out;
}

function parseCounted(value: unknown, name: string, withMatch: boolean): MatchedFailure {
  if (!value || typeof value !== 'object') throw new DaytonaHttpError(400, `${name} must be an object`);
  const v = value as Record<string, unknown>;
  if (typeof v.count !== 'number' || !Number.isInteger(v.count) || v.count < 0) {
    throw new DaytonaHttpError(400, `${name}.count must be an integer >= 0`);
  }
  const out: MatchedFailure = { count: v.count };
  if (v.mode !== undefined) {
    const mode = String(v.mode);
    if (!MODES.has(mode)) throw new DaytonaHttpError(400, `${name}.mode must be one of ${[...MODES].join(', ')}`);
    out.mode = mode as FailureMode;
  }
  if (v.match !== undefined) {
    if (!withMatch || typeof v.match !== 'string') throw new DaytonaHttpError(400, `${name}.match must be a string`);
    try {
      new RegExp(v.match);
    } catch {
      throw new DaytonaHttpError(400, `${name}.match is not a valid regular expression`);
    }
    out.match = v.match;
  }
  return out;
}

export class Faults {
  private config: FaultConfig = {};

  constructor(initial?: FaultConfig) {
    if (initial) this.merge(initial);
  }

  merge(update: FaultConfig): void {
    this.config = { ...this.config, ...structuredClone(update) };
  }

  clear(): void {
    this.config = {};
  }

  snapshot(): FaultConfig {
    return structuredClone(this.config);
  }

  delay(kind: 'create' | 'toolbox' | 'api'): number {
    return this.config.delayMs?.[kind] ?? 0;
  }

  /** Consumes one create failure, if armed. */
  takeCreateFailure(): FailureMode | undefined {
    return take(this.config.createFailures, undefined);
  }

  takeToolboxFailure(path: string): FailureMode | undefined {
    return take(this.config.toolboxFailures, path);
  }

  takeApiFailure(methodAndPath: string): FailureMode | undefined {
    return take(this.config.apiFailures, methodAndPath);
  }

  /** True when this command should hang (and consumes one). */
  takeHang(command: string): boolean {
    const h = this.config.hangExec;
    if (!h || h.count <= 0) return false;
    if (h.match !== undefined && !new RegExp(h.match).test(command)) return false;
    h.count--;
    return true;
  }
}

function take(f: MatchedFailure | undefined, subject: string | undefined): FailureMode | undefined {
  if (!f || f.count <= 0) return undefined;
  if (f.match !== undefined && subject !== undefined && !new RegExp(f.match).test(subject)) return undefined;
  f.count--;
  return f.mode ?? '503';
}
