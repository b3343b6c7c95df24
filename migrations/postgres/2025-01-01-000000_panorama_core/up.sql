-- Panorama core tables for PostgreSQL, column-compatible with earthgecko Skyline's skyline.sql
-- (core-spec §7.4; Skyline itself only ships MySQL DDL). Deliberate differences:
--   * SERIAL ids; SMALLINT for TINYINT(1); DOUBLE PRECISION for the anomalous datapoint
--     (diesel reads it as f64 without the bigdecimal feature; Skyline rounds it to 6 places);
--   * anomaly_timestamp / anomaly_end_timestamp / full_duration are BIGINT (no 2038 limit);
--   * created_timestamp is TIMESTAMPTZ so its epoch does not depend on the server time zone;
--   * the lookup tables are indexed on their name column (hash index for metrics.metric, whose
--     values can exceed the btree entry limit) and `anomalies` gets the two indexes the
--     Panorama searches need: (metric_id, anomaly_timestamp), (anomaly_timestamp) and
--     (app_id | source_id | host_id, anomaly_timestamp);
--   * no `tenant_id` column (HEAD writes one although skyline.sql lacks it; nothing reads it).

CREATE TABLE IF NOT EXISTS hosts (
  id SERIAL PRIMARY KEY,
  host VARCHAR(255) NOT NULL,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS hosts_host ON hosts (host);

CREATE TABLE IF NOT EXISTS apps (
  id SERIAL PRIMARY KEY,
  app VARCHAR(255) NOT NULL,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS apps_app ON apps (app);

CREATE TABLE IF NOT EXISTS algorithms (
  id SERIAL PRIMARY KEY,
  algorithm VARCHAR(255) NOT NULL,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS algorithms_algorithm ON algorithms (algorithm);

CREATE TABLE IF NOT EXISTS sources (
  id SERIAL PRIMARY KEY,
  source VARCHAR(255) NOT NULL,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS sources_source ON sources (source);

CREATE TABLE IF NOT EXISTS metrics (
  id SERIAL PRIMARY KEY,
  metric VARCHAR(4096) NOT NULL,
  ionosphere_enabled SMALLINT DEFAULT 0,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP,
  learn_full_duration_days INTEGER DEFAULT 30,
  learn_valid_ts_older_than INTEGER DEFAULT 3661,
  max_generations INTEGER DEFAULT 5,
  max_percent_diff_from_origin DOUBLE PRECISION DEFAULT 7.0,
  inactive SMALLINT DEFAULT 0,
  inactive_at INTEGER NULL
);
CREATE INDEX IF NOT EXISTS metrics_metric ON metrics USING hash (metric);

CREATE TABLE IF NOT EXISTS anomalies (
  id SERIAL PRIMARY KEY,
  metric_id INTEGER NOT NULL,
  host_id INTEGER NOT NULL,
  app_id INTEGER NOT NULL,
  source_id INTEGER NOT NULL,
  anomaly_timestamp BIGINT NOT NULL,
  anomaly_end_timestamp BIGINT NULL,
  anomalous_datapoint DOUBLE PRECISION NOT NULL,
  full_duration BIGINT NOT NULL,
  algorithms_run VARCHAR(255) NOT NULL,
  triggered_algorithms VARCHAR(255) NOT NULL,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP,
  slack_thread_ts NUMERIC(17,6) DEFAULT 0,
  label VARCHAR(255) NULL,
  user_id INTEGER DEFAULT 0,
  alert INTEGER NULL
);
CREATE INDEX IF NOT EXISTS anomalies_metric_id_anomaly_timestamp
  ON anomalies (metric_id, anomaly_timestamp);
CREATE INDEX IF NOT EXISTS anomalies_anomaly_timestamp ON anomalies (anomaly_timestamp);
-- The app/source/host filters: without these a value with few or no anomalies (most of the
-- seeded apps) makes the newest-first search walk the whole table.
CREATE INDEX IF NOT EXISTS anomalies_app_id_anomaly_timestamp ON anomalies (app_id, anomaly_timestamp);
CREATE INDEX IF NOT EXISTS anomalies_source_id_anomaly_timestamp ON anomalies (source_id, anomaly_timestamp);
CREATE INDEX IF NOT EXISTS anomalies_host_id_anomaly_timestamp ON anomalies (host_id, anomaly_timestamp);
CREATE INDEX IF NOT EXISTS anomalies_alert ON anomalies (alert);

-- This port's own tables (not in skyline.sql): per-metric anomaly counts folded up to a
-- watermark, so an unfiltered count_by_metric does not aggregate the whole anomalies table.
CREATE TABLE IF NOT EXISTS panorama_metric_counts (
  metric_id INTEGER PRIMARY KEY,
  anomalies BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS panorama_state (
  name VARCHAR(64) PRIMARY KEY,
  value BIGINT NOT NULL
);
INSERT INTO panorama_state (name, value) SELECT 'metric_counts_through_id', 0 WHERE NOT EXISTS (SELECT 1 FROM panorama_state WHERE name = 'metric_counts_through_id');

CREATE TABLE IF NOT EXISTS algorithm_groups (
  id SERIAL PRIMARY KEY,
  algorithm_group VARCHAR(255)
);

CREATE TABLE IF NOT EXISTS users (
  id SERIAL PRIMARY KEY,
  "user" VARCHAR(255),
  description VARCHAR(255),
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP
);

-- Seed rows, each only when absent, in skyline.sql's order (so a fresh database gets the
-- same ids as Skyline: analyzer = 1 ... vortex = 8, graphite = 1, Skyline user = 1).
INSERT INTO apps (app) SELECT 'analyzer' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'analyzer');
INSERT INTO apps (app) SELECT 'mirage' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'mirage');
INSERT INTO apps (app) SELECT 'boundary' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'boundary');
INSERT INTO apps (app) SELECT 'ionosphere' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'ionosphere');
INSERT INTO apps (app) SELECT 'analyzer_batch' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'analyzer_batch');
INSERT INTO apps (app) SELECT 'webapp' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'webapp');
INSERT INTO apps (app) SELECT 'snab' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'snab');
INSERT INTO apps (app) SELECT 'vortex' WHERE NOT EXISTS (SELECT 1 FROM apps WHERE app = 'vortex');

INSERT INTO sources (source) SELECT 'graphite' WHERE NOT EXISTS (SELECT 1 FROM sources WHERE source = 'graphite');
INSERT INTO sources (source) SELECT 'redis' WHERE NOT EXISTS (SELECT 1 FROM sources WHERE source = 'redis');
INSERT INTO sources (source) SELECT 'redistimeseries' WHERE NOT EXISTS (SELECT 1 FROM sources WHERE source = 'redistimeseries');
INSERT INTO sources (source) SELECT 'victoriametrics' WHERE NOT EXISTS (SELECT 1 FROM sources WHERE source = 'victoriametrics');

INSERT INTO algorithm_groups (algorithm_group) SELECT 'three-sigma' WHERE NOT EXISTS (SELECT 1 FROM algorithm_groups WHERE algorithm_group = 'three-sigma');
INSERT INTO algorithm_groups (algorithm_group) SELECT 'matrixprofile' WHERE NOT EXISTS (SELECT 1 FROM algorithm_groups WHERE algorithm_group = 'matrixprofile');

INSERT INTO users ("user", description) SELECT 'Skyline', 'The default Skyline user' WHERE NOT EXISTS (SELECT 1 FROM users WHERE "user" = 'Skyline');
INSERT INTO users ("user", description) SELECT 'admin', 'The default admin user' WHERE NOT EXISTS (SELECT 1 FROM users WHERE "user" = 'admin');
