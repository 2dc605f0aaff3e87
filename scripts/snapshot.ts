// `npm run snapshot -- [--name <name>] [--agents claude-code,demo] [--base <image>] [--rebuild]`: builds a
// Daytona snapshot with the agents preinstalled at their pinned versions (src/agents/index.ts), with the
// SDK's declarative image builder and `daytona.snapshot.create`, following the build's log, and prints the
// name to set as DAYTONA_SNAPSHOT. Against Daytona with DAYTONA_API_KEY (or DAYTONA_JWT_TOKEN and
// DAYTONA_ORGANIZATION_ID), else against DAYTONA_API_URL, else against the local sandbox server of a
// running `npm start`. An active snapshot of the name is kept (the name holds the agents' versions);
// a failed one is deleted and built again.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { register } from "node:module";
import { parseArgs } from "node:util";
import { Daytona, DaytonaNotFoundError, Image } from "@daytonaio/sdk";
import { LOCAL_SANDBOX_URL_FILE } from "./local-state.ts";

// The agents module imports the sandbox programs as text, as wrangler bundles them.
register("./text-modules.mjs", import.meta.url);
const { AGENTS } = await import("../src/agents/index.ts");
const { DEFAULT_SANDBOX_IMAGE } = await import("../src/durable/decisions.ts");
const { VERSION } = await import("../src/version.ts");
type Kind = keyof typeof AGENTS;

function fail(message: string): never {
  console.error(`snapshot: ${message}`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    name: { type: "string" },
    agents: { type: "string", default: "claude-code,demo" },
    base: { type: "string" },
    rebuild: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (values.help) {
  console.log("usage: npm run snapshot -- [--name <name>] [--agents claude-code,demo] [--base <image>] [--rebuild]");
  process.exit(0);
}

const kinds = values.agents.split(",").map((s) => s.trim()).filter(Boolean);
for (const k of kinds) if (!(k in AGENTS)) fail(`unknown agent "${k}" (known: ${Object.keys(AGENTS).join(", ")})`);
const agents = kinds.map((k) => AGENTS[k as Kind]);
const pins = agents.map((a) => `${a.kind}@${a.version}`).join(",");
const base = values.base ?? (process.env.DAYTONA_IMAGE || DEFAULT_SANDBOX_IMAGE);
// The default name changes with the agents' pins and the base: a new pin gets a new snapshot.
const name = values.name ?? `multishot-agents-${VERSION}-${createHash("sha256").update(`${pins} ${base}`).digest("hex").slice(0, 8)}`;

function client(): { daytona: Daytona; where: string } {
  if (process.env.DAYTONA_API_KEY || process.env.DAYTONA_JWT_TOKEN) {
    return { daytona: new Daytona(), where: `Daytona at ${process.env.DAYTONA_API_URL ?? "its default API URL"}` };
  }
  let apiUrl = process.env.DAYTONA_API_URL;
  if (!apiUrl) {
    try {
      apiUrl = readFileSync(LOCAL_SANDBOX_URL_FILE, "utf8").trim();
    } catch {
      fail("no Daytona to build on: set DAYTONA_API_KEY (Daytona), or DAYTONA_API_URL, or run `npm start` first (its local sandbox server)");
    }
  }
  // A local sandbox server takes any key.
  return { daytona: new Daytona({ apiKey: "local", apiUrl }), where: apiUrl };
}

const { daytona, where } = client();
console.log(`snapshot ${name}: ${pins} on ${base}, at ${where}`);

const existing = await daytona.snapshot.get(name).catch((err: unknown) => {
  if (err instanceof DaytonaNotFoundError || (err as { statusCode?: number }).statusCode === 404) return null;
  fail(`could not look for snapshot ${name}: ${err instanceof Error ? err.message : String(err)}`);
});
if (existing && existing.state === "active" && !values.rebuild) {
  console.log(`snapshot ${name} is active already`);
} else {
  if (existing) {
    if (!values.rebuild && existing.state !== "error" && existing.state !== "build_failed") {
      fail(`snapshot ${name} is ${existing.state}: wait for it, or pass --rebuild`);
    }
    console.log(`deleting snapshot ${name} (${existing.state}${existing.errorReason ? `: ${existing.errorReason}` : ""})`);
    await daytona.snapshot.delete(existing);
  }
  const image = Image.base(base)
    .runCommands(...agents.flatMap((a) => a.snapshotCommands()))
    .env({ MULTISHOT_AGENTS: pins });
  try {
    // The SDK hands on chunks of the log, each maybe several lines. A step line can be kilobytes (the demo
    // agent goes in as base64): its head says which step it is.
    const onLogs = (chunk: string) => {
      for (const line of chunk.split("\n")) console.log(line.length > 300 ? `${line.slice(0, 299)}…` : line);
    };
    await daytona.snapshot.create({ name, image }, { onLogs, timeout: 0 });
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const built = await daytona.snapshot.get(name);
  if (built.state !== "active") fail(`snapshot ${name} is ${built.state}${built.errorReason ? `: ${built.errorReason}` : ""}`);
}
console.log(`snapshot ready: ${name}`);
console.log(`set DAYTONA_SNAPSHOT=${name} (or a run's "sandbox": {"snapshot": "${name}"}) to start attempts with ${pins} preinstalled`);
