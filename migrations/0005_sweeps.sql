CREATE TABLE `sweeps` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`seen` integer NOT NULL,
	`deleted` integer NOT NULL,
	`failed` integer NOT NULL,
	`detail` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `sweeps_at` ON `sweeps` (`at`);