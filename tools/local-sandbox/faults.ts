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
  /**
   * Faults that apply only to sandboxes carrying all of `labels` (for a create: the labels asked for),
   * by name. They are consulted before the unscoped ones; a scoped fault that does not fire (spent, or
   * its `match` fails) falls through to the unscoped one. In `POST /admin/faults` each name replaces
   * the one before; `null` removes it.
   */
  scoped?: Record<string, ScopedFaultConfig | null>;
  createFailures?: CountedFailure;
  toolboxFailures?: MatchedFailure;
  /** any control-plane call other than create (`/api/...`), `match` tested against `METHOD /path` */
  apiFailures?: MatchedFailure;
  /** fixed latency added before answering */
  delayMs?: { create?: number; toolbox?: number; api?: number };
  /** matching commands are replaced by one that never ends (until killed, timed out or deleted) */
  hangExec?: HangExec;
}

export interface ScopedFaultConfig extends Omit<FaultConfig, 'scoped'> {
  labels: Record<string, string>;
}

type Labels = Record<string, string> | undefined;

const FAULT_KEYS = ['createFailures', 'toolboxFailures', 'apiFailures', 'delayMs', 'hangExec'];

const MODES = new Set<string>(['400', '429', '500', '502', '503', '504', 'reset', 'hang', 'lost']);

export function parseFaultConfig(value: unknown): FaultConfig {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new DaytonaHttpError(400, 'faults must be a JSON object');
  const v = value as Record<string, unknown>;
  const out: FaultConfig = parseFaults(v, 'scoped');
  if (v.scoped !== undefined) {
    if (!v.scoped || typeof v.scoped !== 'object' || Array.isArray(v.scoped)) throw new DaytonaHttpError(400, 'scoped must be an object of named faults');
    out.scoped = {};
    for (const [name, entry] of Object.entries(v.scoped as Record<string, unknown>)) {
      if (entry === null) {
        out.scoped[name] = null;
        continue;
      }
      if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new DaytonaHttpError(400, `scoped.${name} must be an object or null`);
      const e = entry as Record<string, unknown>;
      const labels = e.labels;
      if (
        !labels ||
        typeof labels !== 'object' ||
        Array.isArray(labels) ||
        Object.keys(labels).length === 0 ||
        !Object.values(labels).every((l) => typeof l === 'string')
      ) {
        throw new DaytonaHttpError(400, `scoped.${name}.labels must be a non-empty object of strings`);
      }
      out.scoped[name] = { ...parseFaults(e, 'labels'), labels: { ...(labels as Record<string, string>) } };
    }
  }
  return out;
}

function parseFaults(v: Record<string, unknown>, extraKey: string): Omit<FaultConfig, 'scoped'> {
  const out: Omit<FaultConfig, 'scoped'> = {};
  for (const key of Object.keys(v)) {
    if (!FAULT_KEYS.includes(key) && key !== extraKey) throw new DaytonaHttpError(400, `unknown fault "${key}"`);
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
  private config: Omit<FaultConfig, 'scoped'> = {};
  private scoped = new Map<string, ScopedFaultConfig>();

  constructor(initial?: FaultConfig) {
    if (initial) this.merge(initial);
  }

  merge(update: FaultConfig): void {
    const { scoped, ...rest } = structuredClone(update);
    this.config = { ...this.config, ...rest };
    for (const [name, entry] of Object.entries(scoped ?? {})) {
      if (entry === null) this.scoped.delete(name);
      else this.scoped.set(name, entry);
    }
  }

  clear(): void {
    this.config = {};
    this.scoped.clear();
  }

  snapshot(): FaultConfig {
    const out: FaultConfig = structuredClone(this.config);
    if (this.scoped.size) out.scoped = structuredClone(Object.fromEntries(this.scoped));
    return out;
  }

  /** The scoped fault sets that apply to a sandbox with these labels, in the order they were set, then
   * the unscoped one. */
  private sets(labels: Labels): Array<Omit<FaultConfig, 'scoped'>> {
    const out: Array<Omit<FaultConfig, 'scoped'>> = [];
    if (labels) {
      for (const s of this.scoped.values()) {
        if (Object.entries(s.labels).every(([k, v]) => labels[k] === v)) out.push(s);
      }
    }
    out.push(this.config);
    return out;
  }

  delay(kind: 'create' | 'toolbox' | 'api', labels?: Labels): number {
    for (const set of this.sets(labels)) {
      const d = set.delayMs?.[kind];
      if (d !== undefined) return d;
    }
    return 0;
  }

  /** Consumes one create failure, if armed. */
  takeCreateFailure(labels?: Labels): FailureMode | undefined {
    return this.first(labels, (set) => take(set.createFailures, undefined));
  }

  takeToolboxFailure(path: string, labels?: Labels): FailureMode | undefined {
    return this.first(labels, (set) => take(set.toolboxFailures, path));
  }

  takeApiFailure(methodAndPath: string, labels?: Labels): FailureMode | undefined {
    return this.first(labels, (set) => take(set.apiFailures, methodAndPath));
  }

  /** True when this command should hang (and consumes one). */
  takeHang(command: string, labels?: Labels): boolean {
    return (
      this.first(labels, (set) => {
        const h = set.hangExec;
        if (!h || h.count <= 0) return undefined;
        if (h.match !== undefined && !new RegExp(h.match).test(command)) return undefined;
        h.count--;
        return true;
      }) ?? false
    );
  }

  private first<T>(labels: Labels, fire: (set: Omit<FaultConfig, 'scoped'>) => T | undefined): T | undefined {
    for (const set of this.sets(labels)) {
      const fired = fire(set);
      if (fired !== undefined) return fired;
    }
    return undefined;
  }
}

function take(f: MatchedFailure | undefined, subject: string | undefined): FailureMode | undefined {
  if (!f || f.count <= 0) return undefined;
  if (f.match !== undefined && subject !== undefined && !new RegExp(f.match).test(subject)) return undefined;
  f.count--;
  return f.mode ?? '503';
}
