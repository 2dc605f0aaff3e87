// A snapshot's Dockerfile (`buildInfo.dockerfileContent`), read as far as the local server builds one:
// FROM, RUN, ENV, WORKDIR, ENTRYPOINT and CMD, the instructions the SDK's `Image` writes for
// `Image.base(x).runCommands(...).env({...}).workdir(...).entrypoint([...]).cmd([...])`
// (node_modules/@daytonaio/sdk/cjs/Image.js). Anything else is kept as `unsupported`, so the build can
// fail on it with its name before it runs a single step. No Docker code here: this is only the part of
// Docker's syntax those instructions use (line continuations, comments, JSON exec form, Docker's word
// rules for ENV and WORKDIR).

/** One `K=V` of an ENV instruction. `word` is the value as written (quotes, escapes, `$VAR`): it is
 * expanded where it is used, so `$HOME` is the build's home during the build and each sandbox's own in
 * a sandbox (see expandWord). */
export interface ImageEnvEntry {
  name: string;
  word: string;
}

/** An instruction and where it came from: `text` is the line as Docker prints it in `Step N/M : text`. */
export type Instruction = { text: string; line: number } & (
  | { kind: 'FROM'; image: string }
  /** `command`: a string in the shell form, an argv in the JSON exec form */
  | { kind: 'RUN' | 'ENTRYPOINT' | 'CMD'; command: string | string[] }
  | { kind: 'ENV'; entries: ImageEnvEntry[] }
  | { kind: 'WORKDIR'; word: string }
  | { kind: 'unsupported'; keyword: string }
);

export const SUPPORTED_INSTRUCTIONS = ['FROM', 'RUN', 'ENV', 'WORKDIR', 'ENTRYPOINT', 'CMD'] as const;

/** A Dockerfile the server cannot read at all (as `docker build`'s "dockerfile parse error"). */
export class DockerfileError extends Error {}

/** Physical lines joined into logical ones: a trailing backslash continues a line; comment and empty
 * lines are dropped, also inside a continued instruction, as Docker does. */
function logicalLines(content: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  let current: { text: string; line: number } | undefined;
  content.split(/\r?\n/).forEach((physical, i) => {
    const trimmed = physical.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const continued = /\\\s*$/.test(physical);
    const segment = continued ? physical.replace(/\\\s*$/, '') : physical;
    if (current) current.text += segment;
    else current = { text: segment, line: i + 1 };
    if (!continued) {
      out.push({ text: current.text.trim(), line: current.line });
      current = undefined;
    }
  });
  if (current?.text.trim()) out.push({ text: current.text.trim(), line: current.line });
  return out;
}

/** `["a", "b"]` (Docker's exec form), else undefined: the arguments are the shell form then. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(args);
    if (Array.isArray(parsed) && parsed.every((a) => typeof a === 'string')) return parsed;
  } catch {
    // Not JSON: Docker runs it as a shell command.
  }
  return undefined;
}

export function parseDockerfile(content: string): Instruction[] {
  return logicalLines(content).map(({ text, line }) => {
    const m = /^(\S+)\s*([\s\S]*)$/.exec(text)!;
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    const need = (): void => {
      if (!args) throw new DockerfileError(`dockerfile parse error on line ${line}: ${keyword} requires at least one argument`);
    };
    switch (keyword) {
      case 'FROM':
        need();
        return { kind: 'FROM', image: args.split(/\s+/)[0]!, text, line };
      case 'RUN':
      case 'ENTRYPOINT':
      case 'CMD': {
        need();
        return { kind: keyword, command: execForm(args) ?? args, text, line };
      }
      case 'ENV':
        need();
        return { kind: 'ENV', entries: parseEnvArgs(args, line), text, line };
      case 'WORKDIR':
        need();
        return { kind: 'WORKDIR', word: args, text, line };
      default:
        return { kind: 'unsupported', keyword, text, line };
    }
  });
}

/** Splits on whitespace outside quotes, keeping each word as written (quotes and escapes included). */
function rawWords(args: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < args.length; i++) {
    const ch = args[i]!;
    if (!quote && /\s/.test(ch)) {
      if (word) words.push(word);
      word = '';
      continue;
    }
    word += ch;
    if (ch === '\\' && quote !== "'" && i + 1 < args.length) word += args[++i];
    else if (!quote && (ch === '"' || ch === "'")) quote = ch;
    else if (ch === quote) quote = undefined;
  }
  if (quote) throw new DockerfileError(`unterminated quote in: ${args}`);
  if (word) words.push(word);
  return words;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `ENV K=V K2="v 2"` (any number of pairs), or the older `ENV K the rest of the line`. */
function parseEnvArgs(args: string, line: number): ImageEnvEntry[] {
  const words = rawWords(args);
  const pairForm = words[0]!.includes('=');
  const entries: ImageEnvEntry[] = pairForm
    ? words.map((w) => {
        const eq = w.indexOf('=');
        if (eq < 0) throw new DockerfileError(`dockerfile parse error on line ${line}: can't find = in "${w}". Must be of the form: name=value`);
        if (eq === 0) throw new DockerfileError(`dockerfile parse error on line ${line}: ENV names can not be blank`);
        return { name: w.slice(0, eq), word: w.slice(eq + 1) };
      })
    : [{ name: words[0]!, word: args.slice(words[0]!.length).trim() }];
  for (const e of entries) {
    if (!ENV_NAME.test(e.name)) throw new DockerfileError(`dockerfile parse error on line ${line}: invalid ENV name "${e.name}"`);
  }
  if (!pairForm && !entries[0]!.word) throw new DockerfileError(`dockerfile parse error on line ${line}: ENV must have two arguments`);
  return entries;
}

/**
 * A word as Docker reads ENV and WORKDIR values: `'...'` is literal, `"..."` keeps `\"`, `\\`, `\$` as
 * escapes and expands variables, a backslash outside quotes escapes the next character, and `$VAR`,
 * `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}` take values from `env` (unset: empty). The SDK
 * quotes and escapes every value it writes (`Image.env` uses shell-quote), so its values come out
 * exactly as given.
 */
export function expandWord(word: string, env: Record<string, string | undefined>): string {
  let out = '';
  let i = 0;
  const variable = (): string => {
    // at `$`
    const braced = word[i + 1] === '{';
    if (braced) {
      const end = word.indexOf('}', i + 2);
      if (end < 0) throw new DockerfileError(`missing '}' in: ${word}`);
      const body = word.slice(i + 2, end);
      i = end + 1;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([\s\S]*))?$/.exec(body);
      if (!m) throw new DockerfileError(`unsupported substitution \${${body}} (supported: \${VAR}, \${VAR:-x}, \${VAR:+x})`);
      const value = env[m[1]!];
      const op = m[2];
      const set = op?.startsWith(':') ? !!value : value !== undefined;
      if (op?.endsWith('-')) return set ? value! : expandWord(m[3]!, env);
      if (op?.endsWith('+')) return set ? expandWord(m[3]!, env) : '';
      return value ?? '';
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(word.slice(i + 1));
    if (!m) {
      i++;
      return '$';
    }
    i += 1 + m[0].length;
    return env[m[0]] ?? '';
  };
  while (i < word.length) {
    const ch = word[i]!;
    if (ch === "'") {
      const end = word.indexOf("'", i + 1);
      if (end < 0) throw new DockerfileError(`unterminated quote in: ${word}`);
      out += word.slice(i + 1, end);
      i = end + 1;
    } else if (ch === '"') {
      i++;
      for (;;) {
        if (i >= word.length) throw new DockerfileError(`unterminated quote in: ${word}`);
        const c = word[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\' && ['"', '\\', '$'].includes(word[i + 1] ?? '')) {
          out += word[i + 1];
          i += 2;
        } else if (c === '$') out += variable();
        else {
          out += c;
          i++;
        }
      }
    } else if (ch === '\\') {
      out += word[i + 1] ?? '\\';
      i += 2;
    } else if (ch === '$') out += variable();
    else {
      out += ch;
      i++;
    }
  }
  return out;
}

/** Sets an image's ENV over `env`, in order, each value expanded over what is set before it. */
export function applyImageEnv(env: Record<string, string | undefined>, entries: readonly ImageEnvEntry[]): void {
  for (const e of entries) env[e.name] = expandWord(e.word, env);
}

/** The snapshot's `entrypoint` as Daytona's API records it for a build: the last ENTRYPOINT's exec
 * form, or its shell form with quotes dropped, else `sleep infinity` (snapshot.service.ts
 * getEntrypointFromDockerfile); empty entries are dropped (processEntrypoint). */
export function recordedEntrypoint(instructions: readonly Instruction[]): string[] | null {
  const last = instructions.flatMap((i) => (i.kind === 'ENTRYPOINT' ? [i.command] : [])).at(-1);
  const raw = last === undefined ? ['sleep', 'infinity'] : Array.isArray(last) ? last : [last.replace(/["']/g, '')];
  const kept = raw.filter((a) => a.trim().length > 0);
  return kept.length ? kept : null;
}
