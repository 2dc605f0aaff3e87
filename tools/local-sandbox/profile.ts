// How kind or how harsh the server is. A profile is a set of behaviours; `lenient` is what the server
// always did (and the default for now), `daytona` turns on every behaviour in which real Daytona is
// harsher (README.md, "Where this server is as harsh as Daytona", has the source of each). Every
// behaviour can also be set on its own, over the profile.
import { isIPv4, isIPv6 } from 'node:net';

export type Profile = 'daytona' | 'lenient';

export interface BehaviourOptions {
  /** the base set; default env LOCAL_SANDBOX_PROFILE or 'daytona' */
  profile?: Profile;
  /** 'daytona': state changes take time and follow Daytona's rules (409 while one is in progress, 400
   * for an errored sandbox until recovered, delete only marks, toolbox refused unless started). */
  lifecycle?: 'daytona' | 'lenient';
  /** time a create spends in `creating` before `started` (ms) */
  createPendingMs?: number;
  /** time a start spends in `starting`, a stop in `stopping` (ms; lifecycle 'daytona' only) */
  stateChangeMs?: number;
  /** time from the delete mark to the sandbox being gone (ms; lifecycle 'daytona' only) */
  destroyDelayMs?: number;
  /** least time a snapshot build stays `building` (ms), so that a client polling once a second (the
   * SDK) sees it and follows the build's log */
  snapshotBuildMinMs?: number;
  /** toolbox errors as the last open-source daemon (v0.190) answers them, or as the OpenAPI spec says */
  daemon?: 'v0.190' | 'spec';
  /** 'daemon': session commands run inside the session's shell through the daemon's own wrapper */
  sessions?: 'daemon' | 'lenient';
  /** what keeps a sandbox from auto-stopping: only requests (Daytona), or also running commands */
  autoStopActivity?: 'requests' | 'processes';
  /** 'restricted': Daytona Tiers 1/2, only the allowlist (plus the sandbox's own ports) is reachable */
  egress?: 'open' | 'restricted';
  /** what a restricted sandbox may reach: `host:port`, `host` (any port), `a.b.c.d/n[:port]`, `[v6]:port` */
  egressAllow?: string[];
  /** under 'restricted', whether non-loopback destinations pass (stand-in for the "essential services") */
  egressExternal?: 'allow' | 'refuse';
  /** 'enforce': a create's `networkBlockAll` / `networkAllowList` limit its processes (Tier 3+) */
  sandboxNetwork?: 'enforce' | 'ignore';
  /** totals across sandboxes, as Daytona counts them; undefined = the profile's, null = no limit */
  quotaCpu?: number | null;
  /** GiB */
  quotaMemory?: number | null;
  /** GiB */
  quotaDisk?: number | null;
}

/** One destination rule: an address block and a port (0 = any). */
export interface EgressRule {
  family: 4 | 6;
  address: string;
  prefix: number;
  port: number;
}

export interface Behaviour {
  profile: Profile;
  lifecycle: 'daytona' | 'lenient';
  createPendingMs: number;
  stateChangeMs: number;
  destroyDelayMs: number;
  snapshotBuildMinMs: number;
  daemon: 'v0.190' | 'spec';
  sessions: 'daemon' | 'lenient';
  autoStopActivity: 'requests' | 'processes';
  egress: 'open' | 'restricted';
  egressAllow: EgressRule[];
  egressExternal: 'allow' | 'refuse';
  sandboxNetwork: 'enforce' | 'ignore';
  quota: { cpu?: number; memory?: number; disk?: number };
}

const LENIENT: Omit<Behaviour, 'profile'> = {
  lifecycle: 'lenient',
  createPendingMs: 0,
  stateChangeMs: 0,
  destroyDelayMs: 0,
  // Not a harshness: without it the SDK never follows a quick build's log (snapshots.ts build).
  snapshotBuildMinMs: 2000,
  daemon: 'spec',
  sessions: 'lenient',
  autoStopActivity: 'processes',
  egress: 'open',
  egressAllow: [],
  egressExternal: 'allow',
  sandboxNetwork: 'ignore',
  quota: {},
};

/** Daytona as an organization on Tier 1 sees it (every new organization starts there). */
const DAYTONA: Omit<Behaviour, 'profile'> = {
  lifecycle: 'daytona',
  createPendingMs: 500,
  stateChangeMs: 300,
  destroyDelayMs: 1500,
  snapshotBuildMinMs: 2000,
  daemon: 'v0.190',
  sessions: 'daemon',
  autoStopActivity: 'requests',
  egress: 'restricted',
  egressAllow: [],
  egressExternal: 'allow',
  sandboxNetwork: 'enforce',
  // Tier 1: 10 vCPU / 10 GiB / 30 GiB (apps/docs/src/content/docs/en/limits.mdx, "Tiers")
  quota: { cpu: 10, memory: 10, disk: 30 },
};

const KEYS: readonly (keyof BehaviourOptions)[] = [
  'profile',
  'lifecycle',
  'createPendingMs',
  'stateChangeMs',
  'destroyDelayMs',
  'snapshotBuildMinMs',
  'daemon',
  'sessions',
  'autoStopActivity',
  'egress',
  'egressAllow',
  'egressExternal',
  'sandboxNetwork',
  'quotaCpu',
  'quotaMemory',
  'quotaDisk',
];

function baseOf(profile: Profile): Behaviour {
  const base = profile === 'daytona' ? DAYTONA : LENIENT;
  return { profile, ...base, egressAllow: [...base.egressAllow], quota: { ...base.quota } };
}

/** The behaviours at server start: the profile (option, else env LOCAL_SANDBOX_PROFILE, else lenient),
 * then each option given over it. */
export function resolveBehaviour(opts: BehaviourOptions, env: NodeJS.ProcessEnv = process.env): Behaviour {
  const profile = opts.profile !== undefined ? checkProfile(opts.profile) : parseProfile(env.LOCAL_SANDBOX_PROFILE);
  return applyOptions(baseOf(profile), opts);
}

/**
 * `POST /admin/behaviour`: options over the behaviours in force; a `profile` among them starts again
 * from that profile. Unknown keys and bad values throw (nothing is changed then).
 */
export function mergeBehaviour(current: Behaviour, opts: BehaviourOptions): Behaviour {
  for (const k of Object.keys(opts)) {
    if (!(KEYS as readonly string[]).includes(k)) throw new Error(`unknown behaviour "${k}" (known: ${KEYS.join(', ')})`);
  }
  const base = opts.profile !== undefined ? baseOf(checkProfile(opts.profile)) : { ...current, egressAllow: [...current.egressAllow], quota: { ...current.quota } };
  return applyOptions(base, opts);
}

function applyOptions(base: Behaviour, opts: BehaviourOptions): Behaviour {
  const ms = (v: number | undefined, name: string, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number >= 0`);
    return v;
  };
  const quota = (v: number | null | undefined, name: string, fallback: number | undefined): number | undefined => {
    if (v === undefined) return fallback;
    if (v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number >= 0 (or null: no limit)`);
    return v;
  };
  if (opts.egressAllow !== undefined && (!Array.isArray(opts.egressAllow) || opts.egressAllow.some((e) => typeof e !== 'string'))) {
    throw new Error('egressAllow must be an array of strings');
  }
  return {
    profile: base.profile,
    lifecycle: oneOf(opts.lifecycle, ['daytona', 'lenient'], 'lifecycle') ?? base.lifecycle,
    createPendingMs: ms(opts.createPendingMs, 'createPendingMs', base.createPendingMs),
    stateChangeMs: ms(opts.stateChangeMs, 'stateChangeMs', base.stateChangeMs),
    destroyDelayMs: ms(opts.destroyDelayMs, 'destroyDelayMs', base.destroyDelayMs),
    snapshotBuildMinMs: ms(opts.snapshotBuildMinMs, 'snapshotBuildMinMs', base.snapshotBuildMinMs),
    daemon: oneOf(opts.daemon, ['v0.190', 'spec'], 'daemon') ?? base.daemon,
    sessions: oneOf(opts.sessions, ['daemon', 'lenient'], 'sessions') ?? base.sessions,
    autoStopActivity: oneOf(opts.autoStopActivity, ['requests', 'processes'], 'autoStopActivity') ?? base.autoStopActivity,
    egress: oneOf(opts.egress, ['open', 'restricted'], 'egress') ?? base.egress,
    egressAllow: opts.egressAllow ? opts.egressAllow.flatMap(parseEgressRule) : base.egressAllow,
    egressExternal: oneOf(opts.egressExternal, ['allow', 'refuse'], 'egressExternal') ?? base.egressExternal,
    sandboxNetwork: oneOf(opts.sandboxNetwork, ['enforce', 'ignore'], 'sandboxNetwork') ?? base.sandboxNetwork,
    quota: {
      cpu: quota(opts.quotaCpu, 'quotaCpu', base.quota.cpu),
      memory: quota(opts.quotaMemory, 'quotaMemory', base.quota.memory),
      disk: quota(opts.quotaDisk, 'quotaDisk', base.quota.disk),
    },
  };
}

function checkProfile(v: unknown): Profile {
  if (v === 'daytona' || v === 'lenient') return v;
  throw new Error(`profile must be "daytona" or "lenient", not "${String(v)}"`);
}

function parseProfile(v: string | undefined): Profile {
  if (v === undefined || v === '') return 'daytona';
  if (v === 'daytona' || v === 'lenient') return v;
  throw new Error(`LOCAL_SANDBOX_PROFILE must be "daytona" or "lenient", not "${v}"`);
}

function oneOf<T extends string>(v: T | undefined, allowed: readonly T[], name: string): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v)) throw new Error(`${name} must be one of ${allowed.join(', ')}, not "${String(v)}"`);
  return v;
}

/**
 * `127.0.0.1:4000`, `localhost:4000` (both loopbacks), `127.0.0.1` or `127.0.0.1:*` (any port),
 * `10.0.0.0/8:443`, `[::1]:4000`. Hostnames other than `localhost` are refused: the shim sees addresses.
 */
export function parseEgressRule(raw: string): EgressRule[] {
  const entry = raw.trim();
  if (!entry) return [];
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?:\/(\d+))?(?::(\*|\d+))?$/.exec(entry);
  let prefixText: string | undefined;
  if (v6) {
    host = v6[1]!;
    prefixText = v6[2];
    portText = v6[3];
  } else {
    const m = /^([^:/]+)(?:\/(\d+))?(?::(\*|\d+))?$/.exec(entry);
    if (!m) throw new Error(`egressAllow: cannot read "${raw}" (host:port, host, a.b.c.d/n[:port] or [v6]:port)`);
    host = m[1]!;
    prefixText = m[2];
    portText = m[3];
  }
  const port = portText === undefined || portText === '*' ? 0 : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`egressAllow: bad port in "${raw}"`);
  const rule = (family: 4 | 6, address: string): EgressRule => {
    const max = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new Error(`egressAllow: bad prefix in "${raw}"`);
    return { family, address, prefix, port };
  };
  if (host === 'localhost') return [rule(4, '127.0.0.1'), rule(6, '::1')];
  if (isIPv4(host)) return [rule(4, host)];
  if (isIPv6(host)) return [rule(6, host)];
  throw new Error(`egressAllow: "${host}" is not an IP address (only localhost is resolved)`);
}

/** The form port-shim.c reads: `4 127.0.0.1 32 4000;6 ::1 128 0`. */
export function shimRules(rules: EgressRule[]): string {
  return rules.map((r) => `${r.family} ${r.address} ${r.prefix} ${r.port}`).join(';');
}

/**
 * A create's `networkAllowList` as Daytona's API checks it (comma-separated IPv4 CIDRs, at most 10).
 * Throws the API's own message (apps/api/src/sandbox/utils/network-validation.util.ts).
 */
export function parseNetworkAllowList(list: string): EgressRule[] {
  const networks = list.split(',').map((n) => n.trim());
  const rules: EgressRule[] = [];
  for (const network of networks) {
    if (!network) continue;
    const [ip, prefixText] = network.split('/');
    if (!ip || !isIPv4(ip)) throw new Error(`Invalid IP address: "${ip ?? ''}" in network "${network}". Must be a valid IPv4 address`);
    if (!prefixText) throw new Error(`Invalid network format: "${network}". Missing CIDR prefix length (e.g., /24)`);
    const prefix = parseInt(prefixText, 10);
    if (!(prefix >= 0 && prefix <= 32)) throw new Error(`Invalid CIDR prefix length: ${network}. Prefix must be between 0 and 32`);
    rules.push({ family: 4, address: ip, prefix, port: 0 });
  }
  if (networks.length > 10) throw new Error('Network allow list cannot contain more than 10 networks');
  return rules;
}
