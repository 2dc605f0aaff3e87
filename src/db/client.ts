// The one way to D1: a drizzle instance typed by the whole schema. Every query module takes a `Db`.
import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema.ts";

export const db = (d1: D1Database) => drizzle(d1, { schema });
export type Db = ReturnType<typeof db>;
