-- host_failures_daily: which hosts fail, per day, region, application and script? One row per
-- dt × region_id × application × script_name × resource_id that had at least one failure:
-- host_failures split by day and the dashboard's filters, kept small for ranking by failures
-- (a host without failures in a group has no row there).
--
-- instances and failed as every mart counts them (macros.sql: counted, failed).
-- host_name, zone_id = the latest non-NULL value seen in the group (by created_at, then key).
-- last_failed_at = the latest failure's end (finished_at, else created_at).
-- example_message = the message of that latest failure.
CREATE OR REPLACE VIEW host_failures_daily AS
WITH keyed AS (
    SELECT
        i.*,
        o.script_name,
        (coalesce(i.created_at, TIMESTAMPTZ '-infinity'), i.execute_uuid, i.batch_index,
            i.instance_id) AS latest,
        CASE WHEN failed(i.status) THEN
            (coalesce(i.finished_at, i.created_at, TIMESTAMPTZ '-infinity'), i.execute_uuid,
                i.batch_index, i.instance_id)
        END AS latest_failure
    FROM execution_instances AS i
    LEFT JOIN script_orders AS o
        ON o.execute_uuid = i.execute_uuid AND o.dt = i.dt
    WHERE counted(i.status)
)
SELECT
    dt,
    region_id,
    application,
    script_name,
    resource_id,
    arg_max(host_name, latest) AS host_name,
    arg_max(zone_id, latest) AS zone_id,
    count(*) AS instances,
    count(*) FILTER (WHERE failed(status)) AS failed,
    max(coalesce(finished_at, created_at)) FILTER (WHERE failed(status)) AS last_failed_at,
    arg_max(message, latest_failure) AS example_message
FROM keyed
GROUP BY dt, region_id, application, script_name, resource_id
HAVING count(*) FILTER (WHERE failed(status)) > 0;
