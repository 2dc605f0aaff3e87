ALTER TABLE `accounts` ADD `run_budget_usd` real;--> statement-breakpoint
ALTER TABLE `accounts` ADD `monthly_budget_usd` real;--> statement-breakpoint
ALTER TABLE `attempts` ADD `cost_usd` real DEFAULT 0 NOT NULL;