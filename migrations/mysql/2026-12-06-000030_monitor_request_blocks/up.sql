-- Endpoint monitoring: the records of one writer batch in one row (src/monitor/block.rs has
-- the encoding), instead of a row per request: a row per request was most of the monitor's
-- cost per request (docs/monitor.md). id numbers the blocks in the order written; first_ms and
-- last_ms (epoch ms) bound its records' times: reads take the blocks overlapping their
-- range, pruning deletes a block once last_ms is older than [monitor] keep_days.
-- monitor_requests keeps the rows written before this migration; they are read alongside
-- until pruned.
CREATE TABLE IF NOT EXISTS monitor_request_blocks (
  id BIGINT NOT NULL AUTO_INCREMENT,
  first_ms BIGINT NOT NULL,
  last_ms BIGINT NOT NULL,
  records INT NOT NULL,
  data LONGBLOB NOT NULL,
  PRIMARY KEY (id),
  INDEX monitor_request_blocks_last (last_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
