import { defineConfig } from "drizzle-kit";

// The schema is the single source of truth; `npm run db:generate` writes migrations/ from it.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
});
