DROP TABLE IF EXISTS monitor_request_blocks;
