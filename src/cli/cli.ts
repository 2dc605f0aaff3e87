// `multishot <command> [options]`: parses the command line, runs the command, and turns whatever
// happened into output and one of the four exit codes (see errors.ts).
import { parseArgs } from "node:util";
import { COMMANDS, type Command, type OptionSpec } from "./commands.ts";
import { Ctx, VERSION, type Io } from "./context.ts";
import { CliError, EXIT, usageError } from "./errors.ts";
import { colors, plainText } from "./format.ts";

/** Options every command takes. */
const GLOBAL: Record<string, OptionSpec> = {
  json: { type: "boolean", help: "print one JSON document on stdout (errors as JSON on stderr)" },
  url: { type: "string", value: "URL", help: "the service (else MULTISHOT_URL, else the saved login)" },
  "no-color": { type: "boolean", help: "no colours (also NO_COLOR=1)" },
  help: { type: "boolean", short: "h", help: "show help" },
};

export async function cli(argv: string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") {
    const topic = first === "help" ? rest[0] : undefined;
    const command = topic ? COMMANDS.find((c) => c.name === topic) : undefined;
    if (topic && !command) return fail(io, argv, usageError(`unknown command: ${topic}`));
    io[first === undefined ? "stderr" : "stdout"].write(command ? commandHelp(command) : mainHelp());
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (first === "--version" || first === "-v" || first === "version") {
    io.stdout.write(`multishot ${VERSION}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) return fail(io, argv, usageError(`unknown command: ${first} (see multishot help)`));

  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: toParseArgs({ ...GLOBAL, ...command.options }),
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    return fail(io, argv, usageError(`${(err as Error).message.replace(/\. To specify a positional.*$/s, "")}\n${usageLine(command)}`));
  }
  if (values.help) {
    io.stdout.write(commandHelp(command));
    return EXIT.ok;
  }
  const ctx = new Ctx(io, { json: values.json === true, noColor: values["no-color"] === true, url: values.url as string | undefined });
  try {
    const { min, max } = command.positionals;
    if (positionals.length < min || positionals.length > max) {
      throw usageError(`${positionals.length < min ? "missing arguments" : `unexpected argument: ${positionals[max]}`}\n${usageLine(command)}`);
    }
    return await command.run(ctx, values, positionals);
  } catch (err) {
    return fail(io, argv, err, ctx);
  }
}

function fail(io: Io, argv: string[], err: unknown, ctx?: Ctx): number {
  const json = ctx?.json ?? argv.includes("--json");
  const e =
    err instanceof CliError ? err : new CliError(EXIT.failed, "internal", `unexpected error: ${(err as Error)?.stack ?? String(err)}`);
  if (json) {
    io.stderr.write(`${JSON.stringify({ error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } })}\n`);
  } else {
    const c = colors(io.stderr.isTTY === true && !io.env.NO_COLOR && !argv.includes("--no-color"));
    io.stderr.write(`${c.red("multishot:")} ${plainText(e.message)}\n`);
  }
  return e.exitCode;
}

function toParseArgs(options: Record<string, OptionSpec>) {
  return Object.fromEntries(
    Object.entries(options).map(([name, o]) => [name, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
  ) as Record<string, { type: "string" | "boolean"; short?: string }>;
}

const usageLine = (c: Command) => `usage: multishot ${c.name}${c.args ? ` ${c.args}` : ""} [options]`;

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
    return [flag, o.help];
  });
  const width = Math.max(...rows.map(([f]) => f!.length));
  return rows.map(([f, h]) => `  ${f!.padEnd(width)}  ${h}`);
}

function commandHelp(c: Command): string {
  const lines = [usageLine(c), "", `${c.summary}.`, ""];
  if (Object.keys(c.options).length) lines.push("options:", ...optionLines(c.options), "");
  lines.push("global options:", ...optionLines(GLOBAL), "");
  return lines.join("\n");
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => `${c.name} ${c.args}`.length));
  return [
    "multishot: run one coding task as N parallel agent attempts, pick the winner, iterate.",
    "",
    "usage: multishot <command> [options]",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${`${c.name} ${c.args}`.padEnd(width)}  ${c.summary}`),
    "",
    "global options:",
    ...optionLines(GLOBAL),
    "",
    "The service and key come from MULTISHOT_URL and MULTISHOT_API_KEY, or from `multishot login`.",
    "Exit codes: 0 ok, 1 the run failed (or the API refused), 2 bad usage, 3 no key or a refused key.",
    "`multishot help <command>` shows a command's options.",
    "",
  ].join("\n");
}
