-- failure_shift_counts: failure_shifts' per-day counts, one row per dt × dimension × key
-- (instances, failed), plus one row per day with dimension '_day' holding the day's counted
-- instances; failure_shifts computes its baselines, scores, alerts and runs from these. Stored
-- in mart_data only (not a view of its own); see build.py.
--
-- The counts of a day depend on that day's partitions only, so a build recomputes them for
-- the changed days; failure_shifts itself is recomputed whole from them at every build,
-- because a changed day moves the baselines of the 7 days after it, the runs (since) of the
-- days after those, and the dimension's dispersion, a median over every day.
CREATE OR REPLACE VIEW failure_shift_counts AS
WITH located AS (
    SELECT
        i.dt,
        i.status,
        i.region_id,
        i.zone_id,
        i.application,
        i.resource_id,
        o.script_name,
        nullif(concat_ws(' ', o.script_name, o.script_version_name), '') AS script_version
    FROM execution_instances AS i
    LEFT JOIN script_orders AS o
        ON o.execute_uuid = i.execute_uuid AND o.dt = i.dt
),
by_key AS (
    SELECT
        dt,
        CASE
            WHEN grouping(region_id) = 0 THEN 'region'
            WHEN grouping(zone_id) = 0 THEN 'zone'
            WHEN grouping(application) = 0 THEN 'application'
            WHEN grouping(script_name) = 0 THEN 'script'
            WHEN grouping(script_version) = 0 THEN 'script_version'
            ELSE 'host'
        END AS dimension,
        coalesce(region_id, zone_id, application, script_name, script_version, resource_id)
            AS key,
        count(*) FILTER (WHERE counted(status)) AS instances,
        count(*) FILTER (WHERE failed(status)) AS failed
    FROM located
    GROUP BY GROUPING SETS (
        (dt, region_id), (dt, zone_id), (dt, application), (dt, script_name),
        (dt, script_version), (dt, resource_id)
    )
),
day_totals AS (
    SELECT dt, CAST(sum(instances) AS BIGINT) AS instances
    FROM by_key
    WHERE dimension = 'region'
    GROUP BY dt
),
patterns AS (
    SELECT
        dt,
        message_pattern(message) AS key,
        count(*) AS failed
    FROM execution_instances
    WHERE failed(status)
    GROUP BY ALL
)
SELECT dt, dimension, key, instances, failed
FROM by_key
WHERE instances > 0
UNION ALL
SELECT p.dt, 'message_pattern', p.key, t.instances, p.failed
FROM patterns AS p
JOIN day_totals AS t ON t.dt = p.dt
UNION ALL
SELECT dt, '_day', CAST(NULL AS VARCHAR), instances, CAST(0 AS BIGINT)
FROM day_totals;
