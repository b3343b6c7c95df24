-- Ionosphere tables for PostgreSQL (stages-spec §3.2), column-compatible with Skyline's
-- skyline.sql. One deliberate divergence: Skyline creates two tables per metric at runtime,
-- z_fp_<metric_id> (profile features) and z_ts_<metric_id> (training series); this port keeps
-- them in two normalised tables keyed by (fp_id, feature_id) and (fp_id, timestamp):
-- ionosphere_fp_features and ionosphere_fp_timeseries. Plus one table of this port's own,
-- ionosphere_training_data: the series each anomaly was found in (Skyline's training-data
-- directory, spec §0.3), so an anomaly can be trained on hours later.

CREATE TABLE IF NOT EXISTS ionosphere (
  id SERIAL PRIMARY KEY,
  metric_id INT NOT NULL,
  full_duration INT NOT NULL,
  resolution INT DEFAULT 0,
  anomaly_timestamp INT NOT NULL,
  enabled SMALLINT DEFAULT 1,
  tsfresh_version VARCHAR(12) DEFAULT NULL,
  calc_time DOUBLE PRECISION DEFAULT NULL,
  features_count INT DEFAULT NULL,
  features_sum DOUBLE PRECISION DEFAULT NULL,
  deleted INT DEFAULT NULL,
  matched_count INT DEFAULT 0,
  last_matched INT DEFAULT NULL,
  last_checked INT DEFAULT NULL,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP,
  checked_count INT DEFAULT 0,
  parent_id INT DEFAULT 0,
  generation INT DEFAULT 0,
  motif_matched_count INT DEFAULT 0,
  motif_last_matched INT DEFAULT NULL,
  motif_last_checked INT DEFAULT NULL,
  motif_checked_count INT DEFAULT 0,
  validated INT DEFAULT 0,
  layers_id INT DEFAULT 0,
  echo_fp SMALLINT DEFAULT 0,
  user_id INT DEFAULT NULL,
  label VARCHAR(255) DEFAULT NULL,
  validated_user_id INT DEFAULT NULL,
  alias_id INT DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ionosphere_metric_id ON ionosphere (metric_id, enabled);
CREATE INDEX IF NOT EXISTS ionosphere_parent_id ON ionosphere (parent_id);

-- Skyline's z_fp_<metric_id>, normalised.
CREATE TABLE IF NOT EXISTS ionosphere_fp_features (
  fp_id INT NOT NULL,
  feature_id INT NOT NULL,
  value DOUBLE PRECISION DEFAULT NULL,
  PRIMARY KEY (fp_id, feature_id)
);

-- Skyline's z_ts_<metric_id>, normalised.
CREATE TABLE IF NOT EXISTS ionosphere_fp_timeseries (
  fp_id INT NOT NULL,
  timestamp BIGINT NOT NULL,
  value DOUBLE PRECISION DEFAULT NULL,
  PRIMARY KEY (fp_id, timestamp)
);

CREATE TABLE IF NOT EXISTS ionosphere_matched (
  id SERIAL PRIMARY KEY,
  fp_id INT NOT NULL,
  metric_timestamp INT DEFAULT 0,
  all_calc_features_sum DOUBLE PRECISION DEFAULT 0,
  all_calc_features_count INT DEFAULT 0,
  sum_common_values DOUBLE PRECISION DEFAULT 0,
  common_features_count INT DEFAULT 0,
  tsfresh_version VARCHAR(12) DEFAULT NULL,
  minmax SMALLINT DEFAULT 0,
  minmax_fp_features_sum DOUBLE PRECISION DEFAULT 0,
  minmax_fp_features_count INT DEFAULT 0,
  minmax_anomalous_features_sum DOUBLE PRECISION DEFAULT 0,
  minmax_anomalous_features_count INT DEFAULT 0,
  fp_count INT DEFAULT 0,
  fp_checked INT DEFAULT 0,
  motifs_matched_id INT DEFAULT NULL,
  validated INT DEFAULT 0,
  user_id INT DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS ionosphere_matched_fp_id ON ionosphere_matched (fp_id, metric_timestamp);

CREATE TABLE IF NOT EXISTS ionosphere_layers (
  id SERIAL PRIMARY KEY,
  fp_id INT NOT NULL,
  metric_id INT NOT NULL,
  enabled SMALLINT DEFAULT 1,
  deleted SMALLINT DEFAULT 0,
  matched_count INT DEFAULT 0,
  last_matched INT DEFAULT NULL,
  last_checked INT DEFAULT NULL,
  check_count INT DEFAULT 0,
  created_timestamp TIMESTAMPTZ NULL DEFAULT CURRENT_TIMESTAMP,
  label VARCHAR(255) DEFAULT NULL,
  validated INT DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ionosphere_layers_metric_id ON ionosphere_layers (metric_id, fp_id);

CREATE TABLE IF NOT EXISTS layers_algorithms (
  id SERIAL PRIMARY KEY,
  layer_id INT NOT NULL,
  fp_id INT NOT NULL,
  metric_id INT NOT NULL,
  layer VARCHAR(10) NOT NULL,
  type VARCHAR(50) NOT NULL,
  condition VARCHAR(10) NOT NULL,
  layer_boundary VARCHAR(255) NOT NULL,
  times_in_row INT DEFAULT 0
);
CREATE INDEX IF NOT EXISTS layers_algorithms_layer_id ON layers_algorithms (layer_id);

CREATE TABLE IF NOT EXISTS ionosphere_layers_matched (
  id SERIAL PRIMARY KEY,
  layer_id INT NOT NULL,
  fp_id INT NOT NULL,
  metric_id INT NOT NULL,
  anomaly_timestamp INT NOT NULL,
  anomalous_datapoint DOUBLE PRECISION NOT NULL,
  full_duration INT NOT NULL,
  layers_count INT DEFAULT 0,
  layers_checked INT DEFAULT 0,
  approx_close SMALLINT DEFAULT 0,
  validated INT DEFAULT 0,
  user_id INT DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS ionosphere_layers_matched_metric_id
  ON ionosphere_layers_matched (metric_id, anomaly_timestamp);

CREATE TABLE IF NOT EXISTS ionosphere_minmax (
  fp_id INTEGER PRIMARY KEY,
  minmax_min DOUBLE PRECISION NOT NULL,
  minmax_max DOUBLE PRECISION NOT NULL,
  values_count INT NOT NULL,
  features_count INT NOT NULL,
  features_sum DOUBLE PRECISION NOT NULL,
  tsfresh_version VARCHAR(12) DEFAULT NULL,
  calc_time DOUBLE PRECISION DEFAULT NULL
);

-- This port's own: the series an anomaly was found in (Skyline's training-data directory).
-- `series` is a JSON list of [timestamp, value] pairs; `full_duration` is the nominal window
-- (the Analyzer's full_duration_secs, Mirage's hours*3600). Pruned after
-- [ionosphere] keep_training_secs.
CREATE TABLE IF NOT EXISTS ionosphere_training_data (
  id SERIAL PRIMARY KEY,
  metric_id INT NOT NULL,
  app_id INT NOT NULL,
  metric_timestamp BIGINT NOT NULL,
  full_duration BIGINT NOT NULL,
  added_at BIGINT NOT NULL,
  points INT NOT NULL,
  series TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ionosphere_training_data_key
  ON ionosphere_training_data (metric_id, metric_timestamp, app_id);
CREATE INDEX IF NOT EXISTS ionosphere_training_data_added_at ON ionosphere_training_data (added_at);
