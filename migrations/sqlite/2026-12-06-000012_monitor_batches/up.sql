-- Endpoint monitoring: one row per batch the monitor writer has committed, written in the
-- batch's own transaction, so a batch retried after a lost answer (the first attempt timed
-- out or its connection dropped, but it committed) is recognised and not inserted twice.
-- id is the writer's random 63-bit batch id; time_ms (epoch ms) is for pruning with
-- [monitor] keep_days.
CREATE TABLE IF NOT EXISTS monitor_batches (
  id BIGINT NOT NULL PRIMARY KEY,
  time_ms BIGINT NOT NULL,
  requests INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS monitor_batches_time ON monitor_batches (time_ms);
