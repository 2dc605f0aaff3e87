// Shared by the local sandbox server tests: one real server per test file, the real SDK pointed at it.
import { Daytona, type DaytonaError } from '@daytonaio/sdk';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { startLocalSandboxServer } from '../../tools/local-sandbox/server.ts';
import type { LocalSandboxServer, LocalSandboxServerOptions } from '../../tools/local-sandbox/server.ts';

export interface Harness {
  server: LocalSandboxServer;
  daytona: Daytona;
  /** JSON from an admin endpoint */
  admin<T = Record<string, unknown>>(path: string, init?: RequestInit): Promise<T>;
}

/** Starts a server before the file's tests and closes it (killing every sandbox process) after. */
export function useLocalSandbox(opts: LocalSandboxServerOptions = {}): Harness {
  const h = {} as Harness;
  beforeAll(async () => {
    // Each behaviour is tested on its own here: the lenient base unless a file asks for a profile.
    h.server = await startLocalSandboxServer({ log: () => undefined, profile: 'lenient', ...opts });
    // Polling mode is not needed (the server speaks socket.io); an explicit apiUrl as the contract says.
    h.daytona = new Daytona({ apiKey: 'any-key-works', apiUrl: h.server.apiUrl });
    h.admin = async <T>(path: string, init?: RequestInit): Promise<T> => {
      const res = await fetch(`${h.server.url}/admin${path}`, init);
      if (!res.ok) throw new Error(`admin ${path}: ${res.status} ${await res.text()}`);
      return (res.status === 204 ? {} : await res.json()) as T;
    };
  });
  afterAll(async () => {
    await h.daytona?.[Symbol.asyncDispose]();
    await h.server?.close();
  });
  return h;
}

/** A process that exists and is not a zombie (an orphan killed in a container whose init does not
 * reap stays a zombie, but it is dead all the same). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The error a call rejects with (the test fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<DaytonaError> {
  try {
    await p;
  } catch (err) {
    return err as DaytonaError;
  }
  throw new Error('expected a rejection');
}
