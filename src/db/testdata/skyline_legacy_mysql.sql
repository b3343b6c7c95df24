-- Test fixture: the core tables as an older earthgecko Skyline skyline.sql (circa 2017)
-- created them: MyISAM lookup tables, metric VARCHAR(255), DECIMAL(18,6) datapoints, no
-- anomaly_end_timestamp / user_id columns and no anomaly_timestamp index. The migration must
-- add only what this port needs and leave everything else alone.

-- skyline.sql creates the schema with `DEFAULT CHARACTER SET utf8 COLLATE utf8_general_ci`.
ALTER DATABASE CHARACTER SET utf8 COLLATE utf8_general_ci;

CREATE TABLE IF NOT EXISTS `hosts` (
  `id` INT NOT NULL AUTO_INCREMENT,
  `host` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  INDEX `host_id` (`id`, `host`)) ENGINE=MyISAM;

CREATE TABLE IF NOT EXISTS `apps` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `app` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  INDEX `app` (`id`,`app`)) ENGINE=MyISAM;

CREATE TABLE IF NOT EXISTS `algorithms` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `algorithm` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  INDEX `algorithm_id` (`id`,`algorithm`)) ENGINE=MyISAM;

CREATE TABLE IF NOT EXISTS `sources` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `source` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  INDEX `app` (`id`,`source` ASC)) ENGINE=MyISAM;

CREATE TABLE IF NOT EXISTS `metrics` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `metric` VARCHAR(255) NOT NULL,
  `ionosphere_enabled` tinyint(1) DEFAULT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  `learn_full_duration_days` INT DEFAULT 30,
  `learn_valid_ts_older_than` INT DEFAULT 3661,
  `max_generations` INT DEFAULT 5,
  `max_percent_diff_from_origin` DOUBLE DEFAULT 7.0,
  PRIMARY KEY (id),
  INDEX `metric` (`id`,`metric`)) ENGINE=MyISAM;

CREATE TABLE IF NOT EXISTS `anomalies` (
  `id` INT(11) NOT NULL AUTO_INCREMENT,
  `metric_id` INT(11) NOT NULL,
  `host_id` INT(11) NOT NULL,
  `app_id` INT(11) NOT NULL,
  `source_id` INT(11) NOT NULL,
  `anomaly_timestamp` INT(10) NOT NULL,
  `anomalous_datapoint` DECIMAL(18,6) NOT NULL,
  `full_duration` INT(11) NOT NULL,
  `algorithms_run` VARCHAR(255) NOT NULL,
  `triggered_algorithms` VARCHAR(255) NOT NULL,
  `created_timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  INDEX `anomaly` (`id`,`metric_id`,`host_id`,`app_id`,`source_id`,`anomaly_timestamp`,
                   `full_duration`,`triggered_algorithms`,`created_timestamp`))
    ENGINE=InnoDB;

INSERT INTO `apps` (`app`) VALUES ('analyzer'), ('mirage'), ('boundary'), ('crucible');
INSERT INTO `sources` (`source`) VALUES ('graphite');
INSERT INTO `hosts` (`host`) VALUES ('skyline-old');
INSERT INTO `algorithms` (`algorithm`) VALUES ('histogram_bins'), ('grubbs');
INSERT INTO `metrics` (`metric`) VALUES ('stats.old.metric');
INSERT INTO `anomalies` (`metric_id`, `host_id`, `app_id`, `source_id`, `anomaly_timestamp`,
  `anomalous_datapoint`, `full_duration`, `algorithms_run`, `triggered_algorithms`)
  VALUES (1, 1, 1, 1, 1500000000, 3.5, 86400, '1,2', '2');
