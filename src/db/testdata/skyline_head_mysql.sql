-- Test fixture: the core tables of a `skyline` database as earthgecko Skyline's skyline.sql
-- (HEAD) creates them, written from core-spec §7.4, plus rows Python Skyline would have
-- written. Used to prove the MySQL migration is idempotent on such a database and that this
-- port reads and writes it unchanged.

-- skyline.sql creates the schema with `DEFAULT CHARACTER SET utf8 COLLATE utf8_general_ci`.
ALTER DATABASE CHARACTER SET utf8 COLLATE utf8_general_ci;

CREATE TABLE IF NOT EXISTS `hosts` (
  `id` INT NOT NULL AUTO_INCREMENT,
  `host` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  INDEX `host_id` (`id`, `host`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `apps` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `app` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  INDEX `app` (`id`,`app`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `algorithms` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `algorithm` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  INDEX `algorithm_id` (`id`,`algorithm`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `sources` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `source` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  INDEX `app` (`id`,`source` ASC)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `metrics` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `metric` VARCHAR(4096) NOT NULL,
  `ionosphere_enabled` tinyint(1) DEFAULT 0,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  `learn_full_duration_days` INT DEFAULT 30,
  `learn_valid_ts_older_than` INT DEFAULT 3661,
  `max_generations` INT DEFAULT 5,
  `max_percent_diff_from_origin` DOUBLE DEFAULT 7.0,
  `inactive` tinyint(1) DEFAULT 0,
  `inactive_at` INT(11) DEFAULT NULL,
  PRIMARY KEY (id),
  INDEX `metric` (`id`,`metric`(255),`ionosphere_enabled`,`inactive`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `anomalies` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `metric_id` INT(11) NOT NULL,
  `host_id` INT(11) NOT NULL,
  `app_id` INT(11) NOT NULL,
  `source_id` INT(11) NOT NULL,
  `anomaly_timestamp` INT(11) NOT NULL,
  `anomaly_end_timestamp` INT(11) DEFAULT NULL,
  `anomalous_datapoint` DECIMAL(65,6) NOT NULL,
  `full_duration` INT(11) NOT NULL,
  `algorithms_run` VARCHAR(255) NOT NULL,
  `triggered_algorithms` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  `slack_thread_ts` DECIMAL(17,6) DEFAULT 0,
  `label` VARCHAR(255) DEFAULT NULL,
  `user_id` INT DEFAULT 0,
  `alert` INT(11) DEFAULT NULL,
  PRIMARY KEY (id),
  INDEX `anomaly` (`id`,`metric_id`,`host_id`,`app_id`,`source_id`,`anomaly_timestamp`,
                   `full_duration`,`triggered_algorithms`,`created_timestamp`),
  INDEX `anomaly_timestamp` (`anomaly_timestamp`),
  INDEX `alert` (`alert`))
    ENGINE=InnoDB;

ALTER TABLE `anomalies` MODIFY `anomaly_timestamp` INT(10) NOT NULL;

CREATE TABLE IF NOT EXISTS `algorithm_groups` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `algorithm_group` VARCHAR(255) DEFAULT NULL,
  PRIMARY KEY (`id`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `users` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `user` VARCHAR(255) DEFAULT NULL,
  `description` VARCHAR(255) DEFAULT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  INDEX `users` (`id`,`user`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `anomalies_updated` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `anomaly_id` INT(11) NOT NULL,
  `metric_id` INT(11) NOT NULL,
  `changed_timestamp` INT(11) NOT NULL,
  `column` VARCHAR(64) NOT NULL,
  `previous_value` DECIMAL(65,6) NOT NULL,
  `new_value` DECIMAL(65,6) NOT NULL,
  PRIMARY KEY (`id`),
  INDEX `anomalies_updated` (`id`, `anomaly_id`, `metric_id`, `changed_timestamp`)) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `sql_versions` (
  `version` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB;

INSERT INTO `sql_versions` (`version`) VALUES ('5.0.0');
INSERT INTO `apps` (`app`) VALUES ('analyzer'), ('mirage'), ('boundary'), ('ionosphere'),
  ('analyzer_batch'), ('webapp'), ('snab'), ('vortex');
INSERT INTO `sources` (`source`) VALUES ('graphite'), ('redis'), ('redistimeseries'),
  ('victoriametrics');
INSERT INTO `algorithm_groups` (`algorithm_group`) VALUES ('three-sigma'), ('matrixprofile');
INSERT INTO `users` (`user`, `description`) VALUES ('Skyline', 'The default Skyline user'),
  ('admin', 'The default admin user');

-- What Python Skyline recorded before the switch.
INSERT INTO `hosts` (`host`) VALUES ('skyline-python-1');
INSERT INTO `algorithms` (`algorithm`) VALUES ('histogram_bins'), ('first_hour_average'),
  ('stddev_from_average'), ('grubbs'), ('ks_test'), ('mean_subtraction_cumulation'),
  ('median_absolute_deviation'), ('stddev_from_moving_average'), ('least_squares');
INSERT INTO `metrics` (`metric`, `max_generations`, `max_percent_diff_from_origin`)
  VALUES ('stats.legacy.metric', 16, 100.0);
INSERT INTO `anomalies` (`metric_id`, `host_id`, `app_id`, `source_id`, `anomaly_timestamp`,
  `anomaly_end_timestamp`, `anomalous_datapoint`, `full_duration`, `algorithms_run`,
  `triggered_algorithms`, `user_id`)
  VALUES (1, 1, 2, 1, 1700000000, 1700000600, 12345.678901, 604800, '1,2,3,4,5,6,7,8,9',
  '4,7,9', 1);
