// The model budgets of the credential gateway: a run's (its own `limits.budgetUsd`, else its account's
// default, else DEFAULT_RUN_BUDGET_USD) and an account's per calendar month, UTC (its own, else
// ACCOUNT_MONTHLY_BUDGET_USD). A run's spend counts in the month the run was made.
import { db } from "./db/client.ts";
import { gatewaySpend } from "./db/limit-queries.ts";
import type { Env } from "./env.ts";

export const DEFAULT_RUN_BUDGET_USD = 10;
export const DEFAULT_MONTHLY_BUDGET_USD = 100;

const setting = (value: string | undefined, fallback: number): number => {
  const n = value === undefined || value === "" ? NaN : Number(value);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
};

export const defaultRunBudgetUsd = (env: Env) => setting(env.DEFAULT_RUN_BUDGET_USD, DEFAULT_RUN_BUDGET_USD);
export const defaultMonthlyBudgetUsd = (env: Env) => setting(env.ACCOUNT_MONTHLY_BUDGET_USD, DEFAULT_MONTHLY_BUDGET_USD);

/** The first millisecond of the calendar month (UTC) that `now` is in. */
export function monthStart(now = Date.now()): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export interface AccountSpend {
  runBudgetUsd: number;
  monthlyBudgetUsd: number;
  /** Spent by the account's runs made this month (leaving out the run asking, when one asks). */
  monthSpentUsd: number;
}

export async function accountSpend(env: Env, accountId: string, exceptRunId?: string, now = Date.now()): Promise<AccountSpend> {
  const s = await gatewaySpend(db(env.DB), { accountId, monthStart: monthStart(now), ...(exceptRunId ? { exceptRunId } : {}) });
  return {
    runBudgetUsd: s.runBudgetUsd ?? defaultRunBudgetUsd(env),
    monthlyBudgetUsd: s.monthlyBudgetUsd ?? defaultMonthlyBudgetUsd(env),
    monthSpentUsd: Number(s.monthSpentUsd.toFixed(6)),
  };
}
