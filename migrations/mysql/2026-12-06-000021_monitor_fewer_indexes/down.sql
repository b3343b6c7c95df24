ALTER TABLE monitor_requests ADD INDEX monitor_requests_route_time (route, time_ms);
