// Moving a workspace tarball between a sandbox and R2 with no connection from the sandbox: the Worker
// reaches every sandbox's toolbox (Daytona's default tier lets a sandbox reach only an allowlist, never the
// Worker), so the Worker pulls a winner's parts out of its sandbox into an R2 multipart upload, and pushes
// a stored tarball's parts into the next round's sandboxes. Every byte is streamed (a Worker has 128 MB)
// and hashed on the way; each part is checked against the SHA-256 the sandbox measured, and the seed
// checks the whole file's SHA-256 again in the sandbox that receives it.
import { toHex } from "../crypto.ts";
import type { Sandboxes } from "../sandbox/client.ts";
import type { PartManifest } from "./state.ts";

/** A part arrived with other bytes than the sandbox measured. */
export class ChecksumError extends Error {}

/** Tries at one part's transfer before the whole try fails. */
const PART_TRIES = 3;

/** The pack job's `manifest` file: "<size> <sha256>" for the whole file, then one such line per part. */
export function parseManifest(text: string): PartManifest | null {
  const lines = text.trim().split("\n").filter(Boolean);
  const rows = lines.map((l) => /^(\d+) ([0-9a-f]{64})$/.exec(l.trim()));
  if (rows.length < 2 || rows.some((r) => !r)) return null;
  const [whole, ...parts] = rows.map((r) => ({ size: Number(r![1]), sha256: r![2]! }));
  if (parts.reduce((n, p) => n + p.size, 0) !== whole!.size) return null;
  return { size: whole!.size, sha256: whole!.sha256, parts };
}

/** Part `n` (1-based) of a packed file: its name beside the manifest. */
export const partFile = (dir: string, n: number) => `${dir}/part.${String(n).padStart(5, "0")}`;

/** A stream that hashes what passes through it; `digest` resolves to the hex SHA-256 once it ends. */
function hashing(): { stream: TransformStream<Uint8Array, Uint8Array>; digest: Promise<string> } {
  const digest = new crypto.DigestStream("SHA-256");
  const writer = digest.getWriter();
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      await writer.write(chunk);
      controller.enqueue(chunk);
    },
    async flush() {
      await writer.close();
    },
  });
  return { stream, digest: digest.digest.then((d) => toHex(d)) };
}

async function withTries<T>(what: string, work: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (err) {
      if (i >= PART_TRIES || err instanceof ChecksumError) throw err;
      console.error(`${what} failed (try ${i} of ${PART_TRIES}); trying again`, err instanceof Error ? err.message : err);
      await new Promise((r) => setTimeout(r, 250 * 2 ** i));
    }
  }
}

/** One part of a file in the sandbox into an R2 multipart upload, checked against its SHA-256. */
export function pullPart(
  sandboxes: Sandboxes,
  sandboxId: string,
  path: string,
  part: { number: number; size: number; sha256: string },
  upload: R2MultipartUpload,
): Promise<R2UploadedPart> {
  return withTries(`pulling part ${part.number}`, async () => {
    const body = await sandboxes.downloadStream(sandboxId, path);
    const hash = hashing();
    // R2 takes a stream of known length only: the FixedLengthStream also refuses a part of another size.
    const sized = new FixedLengthStream(part.size);
    const [uploaded] = await Promise.all([upload.uploadPart(part.number, sized.readable), body.pipeThrough(hash.stream).pipeTo(sized.writable)]);
    const sha = await hash.digest;
    if (sha !== part.sha256) throw new ChecksumError(`part ${part.number} arrived with sha256 ${sha}, not ${part.sha256}`);
    return uploaded;
  });
}

/** A byte range of an R2 object into a file in the sandbox. */
export function pushRange(bucket: R2Bucket, key: string, range: { offset: number; length: number }, sandboxes: Sandboxes, sandboxId: string, path: string): Promise<void> {
  return withTries(`pushing ${path}`, async () => {
    const object = await bucket.get(key, { range });
    if (!object) throw new Error(`the stored tarball ${key} is missing`);
    await sandboxes.uploadStream(sandboxId, path, object.body, range.length);
  });
}
