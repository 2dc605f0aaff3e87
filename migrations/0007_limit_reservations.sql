CREATE TABLE `limit_reservations` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`run_id` text NOT NULL,
	`attempts` integer NOT NULL,
	`new_run` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `limit_reservations_account` ON `limit_reservations` (`account_id`);