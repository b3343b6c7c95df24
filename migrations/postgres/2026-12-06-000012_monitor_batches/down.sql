DROP TABLE IF EXISTS monitor_batches;
