import { Hono } from "hono";
import { VERSION } from "../version.ts";
import type { AppEnv } from "./app-types.ts";

// `boot` is the id `npm start` gave this Worker process (not a secret): its readiness check compares it,
// so an older Worker (or any other server) answering on the port is never taken for the new one.
export const health = new Hono<AppEnv>().get("/health", (c) =>
  c.json({ ok: true, version: VERSION, ...(c.env.MULTISHOT_BOOT_ID ? { boot: c.env.MULTISHOT_BOOT_ID } : {}) }),
);
