CREATE INDEX IF NOT EXISTS monitor_requests_route_time ON monitor_requests (route, time_ms);
