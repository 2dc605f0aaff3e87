ALTER TABLE `accounts` ADD `max_concurrent_attempts` integer DEFAULT 8 NOT NULL;--> statement-breakpoint
ALTER TABLE `accounts` ADD `runs_per_hour` integer DEFAULT 60 NOT NULL;