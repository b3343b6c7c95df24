DROP TABLE IF EXISTS monitor_outliers;
DROP TABLE IF EXISTS monitor_requests;
