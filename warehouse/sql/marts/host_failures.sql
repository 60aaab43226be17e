-- host_failures: which hosts fail most, and when did each last fail? One row per host
-- (resource_id; instances without a target host form the one row whose resource_id is NULL).
--
-- instances, failed and failure_rate as every mart counts them (macros.sql: counted,
-- failed, failure_rate).
--
-- tickets        = distinct tickets among the counted instances.
-- host_name, region_id, zone_id = the latest non-NULL value seen for the host, latest by the
--                  instance's created_at (then by its key, so that ties are deterministic).
-- last_failed_at = when the host's latest failure ended: max(finished_at, else created_at) over
--                  its failed instances; NULL when it never failed.
-- A host whose instances all lack an outcome still has a row, with instances = 0.
CREATE OR REPLACE VIEW host_failures AS
WITH counted AS (
    SELECT
        resource_id,
        arg_max(host_name, latest) AS host_name,
        arg_max(region_id, latest) AS region_id,
        arg_max(zone_id, latest) AS zone_id,
        count(DISTINCT execute_uuid) FILTER (WHERE counted(status)) AS tickets,
        count(*) FILTER (WHERE counted(status)) AS instances,
        count(*) FILTER (WHERE failed(status)) AS failed,
        max(coalesce(finished_at, created_at)) FILTER (WHERE failed(status))
            AS last_failed_at
    FROM (
        SELECT
            *,
            -- the order "latest first": created_at (unknown ones last), then the key
            (coalesce(created_at, TIMESTAMPTZ '-infinity'), execute_uuid, batch_index,
                instance_id) AS latest
        FROM execution_instances
    )
    GROUP BY resource_id
)
SELECT
    resource_id,
    host_name,
    region_id,
    zone_id,
    tickets,
    instances,
    failed,
    failure_rate(failed, instances) AS failure_rate,
    last_failed_at
FROM counted;
