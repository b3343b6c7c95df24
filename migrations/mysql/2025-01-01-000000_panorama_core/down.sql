-- Reverting must never drop a Skyline user's tables or data: only the indexes and tables
-- this port added are removed (when present). Skyline's own tables, columns and seed rows
-- stay.
DROP TABLE IF EXISTS `panorama_state`;
DROP TABLE IF EXISTS `panorama_metric_counts`;

SET @panorama_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
     AND TABLE_NAME = 'anomalies' AND INDEX_NAME = 'metric_id_anomaly_timestamp') > 0,
  'DROP INDEX `metric_id_anomaly_timestamp` ON `anomalies`',
  'DO 0');
PREPARE panorama_stmt FROM @panorama_ddl;
EXECUTE panorama_stmt;
DEALLOCATE PREPARE panorama_stmt;

SET @panorama_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
     AND TABLE_NAME = 'metrics' AND INDEX_NAME = 'metric_name') > 0,
  'DROP INDEX `metric_name` ON `metrics`',
  'DO 0');
PREPARE panorama_stmt FROM @panorama_ddl;
EXECUTE panorama_stmt;
DEALLOCATE PREPARE panorama_stmt;

SET @panorama_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
     AND TABLE_NAME = 'anomalies' AND INDEX_NAME = 'app_id_anomaly_timestamp') > 0,
  'DROP INDEX `app_id_anomaly_timestamp` ON `anomalies`',
  'DO 0');
PREPARE panorama_stmt FROM @panorama_ddl;
EXECUTE panorama_stmt;
DEALLOCATE PREPARE panorama_stmt;

SET @panorama_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
     AND TABLE_NAME = 'anomalies' AND INDEX_NAME = 'source_id_anomaly_timestamp') > 0,
  'DROP INDEX `source_id_anomaly_timestamp` ON `anomalies`',
  'DO 0');
PREPARE panorama_stmt FROM @panorama_ddl;
EXECUTE panorama_stmt;
DEALLOCATE PREPARE panorama_stmt;

SET @panorama_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
     AND TABLE_NAME = 'anomalies' AND INDEX_NAME = 'host_id_anomaly_timestamp') > 0,
  'DROP INDEX `host_id_anomaly_timestamp` ON `anomalies`',
  'DO 0');
PREPARE panorama_stmt FROM @panorama_ddl;
EXECUTE panorama_stmt;
DEALLOCATE PREPARE panorama_stmt;

SET @panorama_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
     AND TABLE_NAME = 'anomalies' AND INDEX_NAME = 'anomaly_timestamp_metric_id') > 0,
  'DROP INDEX `anomaly_timestamp_metric_id` ON `anomalies`',
  'DO 0');
PREPARE panorama_stmt FROM @panorama_ddl;
EXECUTE panorama_stmt;
DEALLOCATE PREPARE panorama_stmt;
