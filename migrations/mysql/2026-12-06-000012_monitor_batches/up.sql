-- Endpoint monitoring: one row per batch the monitor writer has committed, written in the
-- batch's own transaction, so a batch retried after a lost answer (the first attempt timed
-- out or its connection dropped, but it committed) is recognised and not inserted twice.
-- id is the writer's random 63-bit batch id; time_ms (epoch ms) is for pruning with
-- [monitor] keep_days.
CREATE TABLE IF NOT EXISTS monitor_batches (
  id BIGINT NOT NULL,
  time_ms BIGINT NOT NULL,
  requests INT NOT NULL,
  PRIMARY KEY (id),
  INDEX monitor_batches_time (time_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
