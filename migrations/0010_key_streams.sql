CREATE TABLE `key_streams` (
	`key_id` text NOT NULL,
	`run_id` text NOT NULL,
	`opened_at` integer NOT NULL,
	PRIMARY KEY(`key_id`, `run_id`)
);
