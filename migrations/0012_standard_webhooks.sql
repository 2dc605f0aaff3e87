ALTER TABLE `webhook_endpoints` ADD `secret_format` text DEFAULT 'legacy' NOT NULL;--> statement-breakpoint
ALTER TABLE `webhook_endpoints` ADD `previous_secret_version` integer;--> statement-breakpoint
ALTER TABLE `webhook_endpoints` ADD `previous_secret_until` integer;--> statement-breakpoint
ALTER TABLE `webhook_endpoints` ADD `disabled_at` integer;--> statement-breakpoint
ALTER TABLE `webhook_endpoints` ADD `disabled_reason` text;