// Where sandboxes move a winner's tarball, authenticated by signed, expiring URLs (src/signed-urls.ts):
//   PUT  /upload/<run>/<round>/<try>/<expires>/<sig>/parts/<n>   one part, checked against x-part-sha256
//   POST /upload/<run>/<round>/<try>/<expires>/<sig>/complete    {parts, size, sha256}
//   GET  /download/<run>/<round>/<expires>/<sig>                  the stored tarball
// Bytes stream between the request and R2; a Worker holds at most a part's worth in flight.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { toHex } from "../crypto.ts";
import { tarballKey } from "../artifact-keys.ts";
import { ApiError } from "../errors.ts";
import { verifySignature } from "../signed-urls.ts";
import type { AppEnv } from "./app-types.ts";
import { coordinator, unwrap } from "./run-access.ts";
import { intParam, jsonBody } from "./validate.ts";

const MAX_PART_BYTES = 512 * 1024 * 1024;

async function authorizeUpload(c: Context<AppEnv>) {
  const run = c.req.param("run")!;
  const round = intParam(c, "round");
  const packTry = intParam(c, "try");
  const expires = Number(c.req.param("expires"));
  if (!(await verifySignature(c.env, "upload", [run, round, packTry, expires], c.req.param("sig")!))) {
    throw new ApiError(403, "forbidden", "bad upload signature");
  }
  if (!(expires > Date.now())) throw new ApiError(410, "expired", "this upload URL has expired");
  return { stub: coordinator(c.env, run), round, packTry };
}

export const transfer = new Hono<AppEnv>()
  .put("/upload/:run/:round/:try/:expires/:sig/parts/:n", async (c) => {
    const { stub, round, packTry } = await authorizeUpload(c);
    const n = intParam(c, "n");
    if (n > 10_000) throw new ApiError(400, "invalid_parameter", "a part number is 1 to 10000");
    const length = Number(c.req.header("content-length"));
    if (!Number.isInteger(length) || length <= 0) throw new ApiError(411, "length_required", "send the part with a Content-Length");
    if (length > MAX_PART_BYTES) throw new ApiError(413, "part_too_large", `a part may be at most ${MAX_PART_BYTES} bytes`);
    const expected = (c.req.header("x-part-sha256") ?? "").toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(expected)) throw new ApiError(400, "missing_checksum", "send the part's SHA-256 as x-part-sha256");
    const target = await stub.uploadTarget(round, packTry);
    if (!target || !c.req.raw.body) throw new ApiError(410, "gone", "this upload is not the current one");

    // One pass over the bytes, with backpressure all the way: each chunk is hashed, then passed on into
    // the R2 part (through a FixedLengthStream, since R2 needs the length). No tee, so nothing piles up
    // in memory when R2 is slower than the hash.
    const digest = new crypto.DigestStream("SHA-256");
    const hashWriter = digest.getWriter();
    const hashing = new TransformStream<Uint8Array, Uint8Array>({
      async transform(chunk, controller) {
        await hashWriter.write(chunk);
        controller.enqueue(chunk);
      },
      async flush() {
        await hashWriter.close();
      },
    });
    const sized = new FixedLengthStream(length);
    const upload = c.env.ARTIFACTS.resumeMultipartUpload(target.key, target.uploadId);
    let part: R2UploadedPart;
    try {
      [part] = await Promise.all([upload.uploadPart(n, sized.readable), c.req.raw.body.pipeThrough(hashing).pipeTo(sized.writable)]);
    } catch (err) {
      // The upload was aborted under us (a retry began), or the body broke off: either way, try again.
      throw new ApiError(410, "gone", `part ${n} was not stored: ${err instanceof Error ? err.message : String(err)}`);
    }
    const actual = toHex(await digest.digest);
    if (actual !== expected) throw new ApiError(422, "checksum_mismatch", `part ${n} arrived with sha256 ${actual}, not ${expected}`);
    if (!(await stub.recordPart(round, packTry, { part: n, etag: part.etag, size: length }))) {
      throw new ApiError(410, "gone", "this upload is not the current one");
    }
    return c.json({ part: n, etag: part.etag, size: length });
  })

  .post("/upload/:run/:round/:try/:expires/:sig/complete", async (c) => {
    const { stub, round, packTry } = await authorizeUpload(c);
    const claim = await jsonBody(
      c,
      z.strictObject({ parts: z.number().int().min(1).max(10_000), size: z.number().int().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
    );
    return c.json(unwrap(await stub.completeWinner(round, packTry, claim)));
  })

  .get("/download/:run/:round/:expires/:sig", async (c) => {
    const run = c.req.param("run");
    const round = intParam(c, "round");
    const expires = Number(c.req.param("expires"));
    if (!(await verifySignature(c.env, "download", [run, round, expires], c.req.param("sig")))) {
      throw new ApiError(403, "forbidden", "bad download signature");
    }
    if (!(expires > Date.now())) throw new ApiError(410, "expired", "this download URL has expired");
    const object = await c.env.ARTIFACTS.get(tarballKey(run, round));
    if (!object) throw new ApiError(404, "not_found", "no tarball for that round");
    return new Response(object.body, {
      headers: { "content-type": "application/gzip", "content-length": String(object.size), etag: object.httpEtag },
    });
  });
