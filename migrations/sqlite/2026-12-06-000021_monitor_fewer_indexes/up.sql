-- Endpoint monitoring: every view and the export read monitor_requests by time range
-- (monitor_requests_time) and group in memory; the (route, time_ms) index served no query
-- and cost a second index insert per monitored request.
DROP INDEX IF EXISTS monitor_requests_route_time;
