ALTER TABLE `rounds` ADD `winner_status` text;--> statement-breakpoint
ALTER TABLE `rounds` ADD `winner_error` text;--> statement-breakpoint
ALTER TABLE `rounds` ADD `tarball_key` text;--> statement-breakpoint
ALTER TABLE `rounds` ADD `tarball_size` integer;--> statement-breakpoint
ALTER TABLE `rounds` ADD `tarball_sha256` text;