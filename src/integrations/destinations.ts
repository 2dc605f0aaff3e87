// Where outbound webhooks may go: not to loopback, private, link-local, shared, reserved or metadata
// addresses, judged by what the name resolves to (not only by how it reads), when the endpoint is made and
// again before every try (a name may be pointed elsewhere after it was checked). Otherwise the delivery
// log, which shows each try's status and error, would be a port scanner of whatever network the Worker
// can reach. Names are resolved with DNS over HTTPS (DNS_RESOLVER_URL, Cloudflare's JSON API by default).
// Local mode allows everything: its receivers are on this machine.
import { isLocalMode, type Env } from "../env.ts";

const DEFAULT_RESOLVER = "https://cloudflare-dns.com/dns-query";

/** IPv4 ranges no webhook goes to: RFC 6890's special-purpose blocks, multicast and the rest. */
const V4_BLOCKED: [string, number][] = [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.88.99.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15],
  ["198.51.100.0", 24], ["203.0.113.0", 24], ["224.0.0.0", 4], ["240.0.0.0", 4],
];

function v4(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function v4Blocked(n: number): boolean {
  return V4_BLOCKED.some(([base, bits]) => Math.floor(n / 2 ** (32 - bits)) === Math.floor(v4(base)! / 2 ** (32 - bits)));
}

/** An IPv6 address as 8 groups, or null (embedded IPv4 in the last 32 bits is accepted). */
function v6(ip: string): number[] | null {
  let s = ip.toLowerCase();
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tail) {
    const n = v4(tail[1]!);
    if (n === null) return null;
    s = `${s.slice(0, -tail[1]!.length)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string) => (h ? h.split(":") : []);
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - rest.length : 0;
  const all = [...head, ...Array(Math.max(0, fill)).fill("0"), ...rest];
  if (all.length !== 8 || !all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return all.map((g) => parseInt(g, 16));
}

/** Whether an IP address (v4 or v6, no brackets) is one no webhook may go to. */
export function isBlockedAddress(ip: string): boolean {
  const n4 = v4(ip);
  if (n4 !== null) return v4Blocked(n4);
  const g = v6(ip);
  if (!g) return true; // not an address we can judge: refused
  const embedded = g[6]! * 65536 + g[7]!;
  if (g.slice(0, 6).every((x) => x === 0)) return g[6] === 0 && g[7]! <= 1 ? true : v4Blocked(embedded); // ::, ::1, ::a.b.c.d
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return v4Blocked(embedded); // ::ffff:a.b.c.d
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4Blocked(embedded); // NAT64
  if ((g[0]! & 0xfe00) === 0xfc00) return true; // unique local
  if ((g[0]! & 0xffc0) === 0xfe80) return true; // link-local
  if ((g[0]! & 0xff00) === 0xff00) return true; // multicast
  if (g[0] === 0x2001 && g[1] === 0x0db8) return true; // documentation
  if (g[0] === 0x2001 && g[1]! < 0x0200) return true; // IETF protocol assignments (Teredo, ORCHID, …)
  if (g[0] === 0x2002) return v4Blocked(g[1]! * 65536 + g[2]!); // 6to4 of a blocked v4
  return false;
}

/** Names that are never public, whatever a resolver says of them. */
const LOCAL_NAME = /(^|\.)(localhost|local|internal|home\.arpa|localdomain)$/i;

interface DohAnswer {
  Status?: number;
  Answer?: { type: number; data: string }[];
}

async function resolve(env: Env, host: string): Promise<string[]> {
  const base = env.DNS_RESOLVER_URL || DEFAULT_RESOLVER;
  const out: string[] = [];
  for (const type of ["A", "AAAA"]) {
    const res = await fetch(`${base}?name=${encodeURIComponent(host)}&type=${type}`, {
      headers: { accept: "application/dns-json" },
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`the resolver answered HTTP ${res.status}`);
    const answer = (await res.json()) as DohAnswer;
    if (answer.Status !== 0 && answer.Status !== 3) throw new Error(`the resolver answered status ${answer.Status}`);
    for (const a of answer.Answer ?? []) if (a.type === 1 || a.type === 28) out.push(a.data);
  }
  return out;
}

/** Why a webhook may not be sent to `url`, or null when it may. */
export async function refusedDestination(env: Env, url: string): Promise<string | null> {
  if (isLocalMode(env)) return null;
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return "the URL cannot be parsed";
  }
  if (v4(host) !== null || host.includes(":")) return isBlockedAddress(host) ? `${host} is a loopback, private, link-local or reserved address` : null;
  if (LOCAL_NAME.test(host)) return `${host} is a local name`;
  let addresses: string[];
  try {
    addresses = await resolve(env, host);
  } catch (err) {
    return `${host} could not be resolved (${err instanceof Error ? err.message : String(err)})`;
  }
  if (addresses.length === 0) return `${host} does not resolve`;
  const blocked = addresses.find(isBlockedAddress);
  return blocked ? `${host} resolves to ${blocked}, a loopback, private, link-local or reserved address` : null;
}
