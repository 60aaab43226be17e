-- host_failure_parts: host_failures' figures per dt × resource_id, from which host_failures
-- is merged. Stored in mart_data only (not a view of its own); see build.py.
--
-- Every column merges exactly across days: instances and failed add; tickets add too, since a
-- ticket's instances all lie in its creation day's partition (dt), so no ticket is counted on
-- two days; last_failed_at is a max; host_name, region_id and zone_id are the day's latest
-- non-NULL value with the order it was chosen by (*_latest), so the merge takes the value of
-- the latest day's choice with arg_max, exactly as one arg_max over every instance would.
CREATE OR REPLACE VIEW host_failure_parts AS
WITH keyed AS (
    SELECT
        *,
        -- the order "latest first": created_at (unknown ones last), then the key
        -- (a named struct: DuckDB 1.1's storage format stores no unnamed ones)
        {'created_at': coalesce(created_at, TIMESTAMPTZ '-infinity'),
            'execute_uuid': execute_uuid, 'batch_index': batch_index,
            'instance_id': instance_id} AS latest
    FROM execution_instances
)
SELECT
    dt,
    resource_id,
    arg_max(host_name, latest) AS host_name,
    max(latest) FILTER (WHERE host_name IS NOT NULL) AS host_name_latest,
    arg_max(region_id, latest) AS region_id,
    max(latest) FILTER (WHERE region_id IS NOT NULL) AS region_id_latest,
    arg_max(zone_id, latest) AS zone_id,
    max(latest) FILTER (WHERE zone_id IS NOT NULL) AS zone_id_latest,
    count(DISTINCT execute_uuid) FILTER (WHERE counted(status)) AS tickets,
    count(*) FILTER (WHERE counted(status)) AS instances,
    count(*) FILTER (WHERE failed(status)) AS failed,
    max(coalesce(finished_at, created_at)) FILTER (WHERE failed(status)) AS last_failed_at
FROM keyed
GROUP BY dt, resource_id;
