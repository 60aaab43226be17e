-- failure_message_hosts_months: the distinct (message_pattern, resource_id) pairs of each month
-- (dt = the month's first day), from failure_message_hosts; distinct again across months they
-- count failure_messages' hosts exactly. Stored in mart_data only; the build recomputes the
-- changed months, reading only their days' rows (build_window: see build.py).
CREATE OR REPLACE VIEW failure_message_hosts_months AS
SELECT DISTINCT
    CAST(date_trunc('month', dt) AS DATE) AS dt,
    message_pattern,
    resource_id
FROM mart_data.failure_message_hosts
WHERE build_window(dt);
