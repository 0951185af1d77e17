-- Beat jobs: the tick each job last ran in (so a second beat's copy does nothing) and when it
-- last ran, for /healthz/beat and the metrics.
CREATE TABLE beat_jobs (
    job           text PRIMARY KEY,
    tick          bigint NOT NULL DEFAULT -1,   -- floor(epoch seconds / period) of the last run
    runs          bigint NOT NULL DEFAULT 0,
    last_run_at   timestamptz,                  -- the last run that finished without an error
    duration_ms   integer,
    last_error_at timestamptz,
    last_error    text                          -- an exception type, never a message
);
