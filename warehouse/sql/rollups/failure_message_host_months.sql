-- failure_message_host_months: in how many months each (message_pattern, resource_id) pair of
-- failure_message_hosts_months appears, one row per pair that appears at all: the all-time
-- distinct pairs, from which failure_messages counts the hosts of each pattern. Stored in
-- mart_data only and kept by difference: when the build recomputes a month of
-- failure_message_hosts_months, it subtracts that month's pairs before and adds them after
-- (build_window: the month), so it never merges every month again (see store.py).
CREATE OR REPLACE VIEW failure_message_host_months AS
SELECT
    message_pattern,
    resource_id,
    count(*) AS months
FROM mart_data.failure_message_hosts_months
WHERE build_window(dt)
GROUP BY ALL;
