// Reading what a person types (a URL, a hidden API key) or what a script pipes in.
import type { Readable } from "node:stream";
import type { Io } from "./context.ts";
import { CliError, EXIT } from "./errors.ts";

export async function readStdin(stdin: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/** One line typed at a terminal, echoed. */
export function readLine(io: Io, question: string): Promise<string> {
  return readTyped(io, question, true);
}

/** One line typed at a terminal, not echoed (an API key). */
export function readSecret(io: Io, question: string): Promise<string> {
  return readTyped(io, question, false);
}

function readTyped(io: Io, question: string, echo: boolean): Promise<string> {
  const { stdin, stderr } = io;
  stderr.write(question);
  stdin.setRawMode?.(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  let line = "";
  return new Promise((resolve, reject) => {
    const finish = (err?: Error) => {
      stdin.removeListener("data", onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      stderr.write("\n");
      if (err) reject(err);
      else resolve(line.trim());
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return finish();
        if (ch === "\u0003") return finish(new CliError(EXIT.usage, "interrupted", "interrupted"));
        if (ch === "\u0004" && line === "") return finish();
        if (ch === "\u007f" || ch === "\b") {
          if (line) {
            line = line.slice(0, -1);
            if (echo) stderr.write("\b \b");
          }
          continue;
        }
        if (ch < " ") continue;
        line += ch;
        if (echo) stderr.write(ch);
      }
    };
    stdin.on("data", onData);
  });
}
