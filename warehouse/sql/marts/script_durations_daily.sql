-- script_durations_daily: how long does each script take to run on a host, per day? One row
-- per dt × script_name, with the median and 95th percentile of the instances' duration_ms.
--
-- instances = instances counted as every mart counts them (macros.sql: counted) that have a
--   duration (both timestamps set). Failed runs count: a failure's time is time spent; a
--   CANCELED run was stopped before its outcome, so its time says nothing about the script.
--   A day and script without such instances has no row.
--
-- Percentiles are quantile_cont: linear interpolation between the two nearest durations
-- (a DOUBLE, which need not be a duration that occurred). script_name is the ticket's, from
-- script_orders joined on (execute_uuid, dt); NULL keys stay NULL.
CREATE OR REPLACE VIEW script_durations_daily AS
SELECT
    i.dt,
    o.script_name,
    count(*) AS instances,
    quantile_cont(i.duration_ms, 0.5) AS p50_duration_ms,
    quantile_cont(i.duration_ms, 0.95) AS p95_duration_ms
FROM execution_instances AS i
LEFT JOIN script_orders AS o
    ON o.execute_uuid = i.execute_uuid AND o.dt = i.dt
WHERE counted(i.status)
    AND i.duration_ms IS NOT NULL
GROUP BY i.dt, o.script_name;
