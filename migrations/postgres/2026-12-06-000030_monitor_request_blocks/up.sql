-- Endpoint monitoring: the records of one writer batch in one row (src/monitor/block.rs has
-- the encoding), instead of a row per request: a row per request was most of the monitor's
-- cost per request (docs/monitor.md). id numbers the blocks in the order written; first_ms and
-- last_ms (epoch ms) bound its records' times: reads take the blocks overlapping their
-- range, pruning deletes a block once last_ms is older than [monitor] keep_days.
-- monitor_requests keeps the rows written before this migration; they are read alongside
-- until pruned.
CREATE TABLE IF NOT EXISTS monitor_request_blocks (
  id BIGSERIAL PRIMARY KEY,
  first_ms BIGINT NOT NULL,
  last_ms BIGINT NOT NULL,
  records INTEGER NOT NULL,
  data BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS monitor_request_blocks_last ON monitor_request_blocks (last_ms);
