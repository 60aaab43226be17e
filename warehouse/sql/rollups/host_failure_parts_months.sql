-- host_failure_parts_months: host_failure_parts merged per month (dt = the month's first day),
-- the way host_failures merges them over every day: sums, max, and arg_max by the order each
-- value was chosen by, kept beside it. So host_failures merges a few rows per host and month
-- instead of one per host and day. Stored in mart_data only; the build recomputes the changed
-- months, reading only their days' rows (build_window: see build.py).
CREATE OR REPLACE VIEW host_failure_parts_months AS
SELECT
    CAST(date_trunc('month', dt) AS DATE) AS dt,
    resource_id,
    arg_max(host_name, host_name_latest) AS host_name,
    max(host_name_latest) AS host_name_latest,
    arg_max(region_id, region_id_latest) AS region_id,
    max(region_id_latest) AS region_id_latest,
    arg_max(zone_id, zone_id_latest) AS zone_id,
    max(zone_id_latest) AS zone_id_latest,
    CAST(sum(tickets) AS BIGINT) AS tickets,
    CAST(sum(instances) AS BIGINT) AS instances,
    CAST(sum(failed) AS BIGINT) AS failed,
    max(last_failed_at) AS last_failed_at
FROM mart_data.host_failure_parts
WHERE build_window(dt)
GROUP BY ALL;
