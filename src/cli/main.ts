// The `multishot` command's entry (bin/multishot imports it): runs the CLI on this process's arguments
// and exits with its code.
import { cli } from "./cli.ts";

const code = await cli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
// Exit now: an SSE connection or a timer left open must not keep a finished command alive. Writes to
// a terminal, file or pipe are synchronous on Linux and macOS, so nothing printed is lost.
process.exit(code);
