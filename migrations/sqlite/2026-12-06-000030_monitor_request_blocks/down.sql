DROP INDEX IF EXISTS monitor_request_blocks_last;
DROP TABLE IF EXISTS monitor_request_blocks;
