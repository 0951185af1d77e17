-- When a beat first came up with each job: a job never run yet is late only once it has been
-- waiting longer than its limit (the hourly-ish prune's first tick is a period after start).
ALTER TABLE beat_jobs ADD COLUMN registered_at timestamptz NOT NULL DEFAULT now();
