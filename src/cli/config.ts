// Where the CLI finds the service and its API key: MULTISHOT_URL and MULTISHOT_API_KEY, else the file
// `multishot login` wrote ($XDG_CONFIG_HOME/multishot/config.json, or ~/.config/multishot/config.json).
// The file holds a secret, so it is written owner-only (0600, in a 0700 folder) and replaced atomically.
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CliError, EXIT } from "./errors.ts";

export interface StoredConfig {
  url: string;
  apiKey: string;
}

type Env = Record<string, string | undefined>;

export function configPath(env: Env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "multishot", "config.json");
}

export function readConfigFile(env: Env): Partial<StoredConfig> | null {
  const path = configPath(env);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new CliError(EXIT.failed, "config", `cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as Partial<StoredConfig>;
    return {
      ...(typeof parsed.url === "string" ? { url: parsed.url } : {}),
      ...(typeof parsed.apiKey === "string" ? { apiKey: parsed.apiKey } : {}),
    };
  } catch {
    throw new CliError(EXIT.failed, "config", `${path} is not valid JSON: run multishot login again`);
  }
}

export function writeConfigFile(env: Env, config: StoredConfig): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  // The mode given to writeFileSync is masked by the umask and ignored for an existing file.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

/** Removes the config file; false when there was none. */
export function removeConfigFile(env: Env): boolean {
  const path = configPath(env);
  try {
    rmSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** The service URL without a trailing slash; refuses anything that is not http(s). */
export function normalizeUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new CliError(EXIT.usage, "usage", `not a URL: ${raw}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliError(EXIT.usage, "usage", `the service URL must be http(s): ${raw}`);
  }
  return url.toString().replace(/\/+$/, "");
}

/**
 * The service and key to use: a --url flag first, then the environment, then the config file. The saved
 * key goes only to the saved service: pointing the CLI elsewhere does not send it there.
 */
export function resolveConfig(env: Env, flags: { url?: string | undefined }): StoredConfig {
  const file = readConfigFile(env);
  const raw = flags.url || env.MULTISHOT_URL || file?.url;
  const url = raw ? normalizeUrl(raw) : undefined;
  const savedKeyFits = file?.url !== undefined && url !== undefined && normalizeUrl(file.url) === url;
  const apiKey = env.MULTISHOT_API_KEY || (savedKeyFits ? file?.apiKey : undefined);
  if (!url || !apiKey) {
    const missing = [!url && "MULTISHOT_URL", !apiKey && "MULTISHOT_API_KEY"].filter(Boolean).join(" and ");
    const saved = file?.apiKey && url && !savedKeyFits ? ` (the saved login is for ${file.url})` : "";
    throw new CliError(EXIT.auth, "not_configured", `${missing} not set${saved}: run \`multishot login\` or set ${missing}`);
  }
  return { url, apiKey };
}
