import { Hono } from "hono";
import { VERSION } from "../version.ts";
import type { AppEnv } from "./app-types.ts";

export const health = new Hono<AppEnv>().get("/health", (c) => c.json({ ok: true, version: VERSION }));
