-- Endpoint monitoring (src/monitor, docs/monitor.md): one row per monitored request
-- (level >= 1; the four *_us span columns only at level 3) and one per outlier (level >= 2).
-- time_ms is epoch milliseconds. Pruned after [monitor] keep_days.
CREATE TABLE IF NOT EXISTS monitor_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms BIGINT NOT NULL,
  route VARCHAR(255) NOT NULL,
  method VARCHAR(16) NOT NULL,
  status INTEGER NOT NULL,
  duration_us BIGINT NOT NULL,
  version VARCHAR(100) NOT NULL,
  ip VARCHAR(64) NOT NULL,
  user_name VARCHAR(255) NOT NULL,
  group_tag VARCHAR(255) NULL,
  redis_us BIGINT NULL,
  sql_us BIGINT NULL,
  graphite_us BIGINT NULL,
  template_us BIGINT NULL
);
CREATE INDEX IF NOT EXISTS monitor_requests_time ON monitor_requests (time_ms);
CREATE INDEX IF NOT EXISTS monitor_requests_route_time ON monitor_requests (route, time_ms);

CREATE TABLE IF NOT EXISTS monitor_outliers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms BIGINT NOT NULL,
  route VARCHAR(255) NOT NULL,
  method VARCHAR(16) NOT NULL,
  status INTEGER NOT NULL,
  duration_us BIGINT NOT NULL,
  version VARCHAR(100) NOT NULL,
  ip VARCHAR(64) NOT NULL,
  user_name VARCHAR(255) NOT NULL,
  route_mean_us BIGINT NOT NULL,
  query_string TEXT NOT NULL,
  headers TEXT NOT NULL,
  cpu_percent DOUBLE NOT NULL,
  rss_bytes BIGINT NOT NULL,
  redis_us BIGINT NOT NULL,
  sql_us BIGINT NOT NULL,
  graphite_us BIGINT NOT NULL,
  template_us BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS monitor_outliers_time ON monitor_outliers (time_ms);
