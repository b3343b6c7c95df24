-- Ionosphere tables for MySQL / MariaDB (stages-spec §3.2). Every CREATE TABLE is IF NOT
-- EXISTS with skyline.sql's columns, so a Skyline `skyline` database that already has them
-- keeps them unchanged; indexes are declared inline (MySQL 8 has no CREATE INDEX IF NOT
-- EXISTS). One deliberate divergence: Skyline's per-metric z_fp_<metric_id> / z_ts_<metric_id>
-- tables are normalised into ionosphere_fp_features (fp_id, feature_id) and
-- ionosphere_fp_timeseries (fp_id, timestamp). ionosphere_training_data is this port's own:
-- the series each anomaly was found in (Skyline's training-data directory, spec §0.3).

CREATE TABLE IF NOT EXISTS `ionosphere` (
  `id` INT(11) NOT NULL AUTO_INCREMENT COMMENT 'features profile unique id',
  `metric_id` INT(11) NOT NULL COMMENT 'metric id',
  `full_duration` INT(11) NOT NULL COMMENT 'seconds of data the profile covers',
  `resolution` INT(11) DEFAULT 0,
  `anomaly_timestamp` INT(11) NOT NULL COMMENT 'anomaly timestamp',
  `enabled` TINYINT(1) DEFAULT 1 COMMENT '1 enabled, 0 disabled',
  `tsfresh_version` VARCHAR(12) DEFAULT NULL,
  `calc_time` DOUBLE DEFAULT NULL,
  `features_count` INT(11) DEFAULT NULL,
  `features_sum` DOUBLE DEFAULT NULL,
  `deleted` INT(11) DEFAULT NULL,
  `matched_count` INT(11) DEFAULT 0,
  `last_matched` INT(11) DEFAULT NULL,
  `last_checked` INT(11) DEFAULT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  `checked_count` INT(11) DEFAULT 0,
  `parent_id` INT(11) DEFAULT 0,
  `generation` INT(11) DEFAULT 0,
  `motif_matched_count` INT(11) DEFAULT 0,
  `motif_last_matched` INT(11) DEFAULT NULL,
  `motif_last_checked` INT(11) DEFAULT NULL,
  `motif_checked_count` INT(11) DEFAULT 0,
  `validated` INT(11) DEFAULT 0,
  `layers_id` INT(11) DEFAULT 0,
  `echo_fp` TINYINT(1) DEFAULT 0,
  `user_id` INT(11) DEFAULT NULL,
  `label` VARCHAR(255) DEFAULT NULL,
  `validated_user_id` INT(11) DEFAULT NULL,
  `alias_id` INT(11) DEFAULT 0,
  PRIMARY KEY (`id`),
  INDEX `features_profile` (`id`, `metric_id`, `enabled`, `layers_id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `ionosphere_fp_features` (
  `fp_id` INT(11) NOT NULL,
  `feature_id` INT(11) NOT NULL,
  `value` DOUBLE DEFAULT NULL,
  PRIMARY KEY (`fp_id`, `feature_id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `ionosphere_fp_timeseries` (
  `fp_id` INT(11) NOT NULL,
  `timestamp` BIGINT NOT NULL,
  `value` DOUBLE DEFAULT NULL,
  PRIMARY KEY (`fp_id`, `timestamp`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `ionosphere_matched` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `fp_id` INT(11) NOT NULL,
  `metric_timestamp` INT(11) DEFAULT 0,
  `all_calc_features_sum` DOUBLE DEFAULT 0,
  `all_calc_features_count` INT(11) DEFAULT 0,
  `sum_common_values` DOUBLE DEFAULT 0,
  `common_features_count` INT(11) DEFAULT 0,
  `tsfresh_version` VARCHAR(12) DEFAULT NULL,
  `minmax` TINYINT(1) DEFAULT 0,
  `minmax_fp_features_sum` DOUBLE DEFAULT 0,
  `minmax_fp_features_count` INT(11) DEFAULT 0,
  `minmax_anomalous_features_sum` DOUBLE DEFAULT 0,
  `minmax_anomalous_features_count` INT(11) DEFAULT 0,
  `fp_count` INT(10) DEFAULT 0,
  `fp_checked` INT(10) DEFAULT 0,
  `motifs_matched_id` INT(11) DEFAULT NULL,
  `validated` TINYINT(1) DEFAULT 0,
  `user_id` INT(11) DEFAULT NULL,
  PRIMARY KEY (`id`),
  INDEX `features_profile_matched` (`id`, `fp_id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `ionosphere_layers` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `fp_id` INT(11) NOT NULL,
  `metric_id` INT(11) NOT NULL,
  `enabled` TINYINT(1) DEFAULT 1,
  `deleted` TINYINT(1) DEFAULT 0,
  `matched_count` INT(11) DEFAULT 0,
  `last_matched` INT(10) DEFAULT NULL,
  `last_checked` INT(10) DEFAULT NULL,
  `check_count` INT(10) DEFAULT 0,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  `label` VARCHAR(255) DEFAULT NULL,
  `validated` INT(11) DEFAULT 0,
  PRIMARY KEY (`id`),
  INDEX `layers` (`id`, `fp_id`, `metric_id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `layers_algorithms` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `layer_id` INT(11) NOT NULL,
  `fp_id` INT(11) NOT NULL,
  `metric_id` INT(11) NOT NULL,
  `layer` VARCHAR(10) NOT NULL,
  `type` VARCHAR(50) NOT NULL,
  `condition` VARCHAR(10) NOT NULL,
  `layer_boundary` VARCHAR(255) NOT NULL,
  `times_in_row` INT(10) DEFAULT 0,
  PRIMARY KEY (`id`),
  INDEX `layers_algorithms` (`id`, `layer_id`, `fp_id`, `metric_id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `ionosphere_layers_matched` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `layer_id` INT(11) NOT NULL,
  `fp_id` INT(11) NOT NULL,
  `metric_id` INT(11) NOT NULL,
  `anomaly_timestamp` INT(11) NOT NULL,
  `anomalous_datapoint` DOUBLE NOT NULL,
  `full_duration` INT(11) NOT NULL,
  `layers_count` INT(10) DEFAULT 0,
  `layers_checked` INT(10) DEFAULT 0,
  `approx_close` TINYINT(1) DEFAULT 0,
  `validated` INT(11) DEFAULT 0,
  `user_id` INT(11) DEFAULT NULL,
  PRIMARY KEY (`id`),
  INDEX `layers_matched` (`id`, `layer_id`, `fp_id`, `metric_id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `ionosphere_minmax` (
  `fp_id` INT(11) NOT NULL,
  `minmax_min` DOUBLE NOT NULL,
  `minmax_max` DOUBLE NOT NULL,
  `values_count` INT(10) NOT NULL,
  `features_count` INT(10) NOT NULL,
  `features_sum` DOUBLE NOT NULL,
  `tsfresh_version` VARCHAR(12) DEFAULT NULL,
  `calc_time` DOUBLE DEFAULT NULL,
  PRIMARY KEY (`fp_id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `ionosphere_training_data` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `metric_id` INT(11) NOT NULL,
  `app_id` INT(11) NOT NULL,
  `metric_timestamp` BIGINT NOT NULL,
  `full_duration` BIGINT NOT NULL,
  `added_at` BIGINT NOT NULL,
  `points` INT(11) NOT NULL,
  `series` MEDIUMTEXT NOT NULL COMMENT 'JSON list of [timestamp, value] pairs',
  PRIMARY KEY (`id`),
  UNIQUE INDEX `training_data_key` (`metric_id`, `metric_timestamp`, `app_id`),
  INDEX `training_data_added_at` (`added_at`)) ENGINE=InnoDB;
