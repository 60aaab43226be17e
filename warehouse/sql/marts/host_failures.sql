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
--
-- Merged from the per-day figures of mart_data.host_failure_parts (parts/), rolled up per
-- month (rollups/), so that a build after a run recomputes only the days that run changed and
-- their months; the merge is exact (see there).
CREATE OR REPLACE VIEW host_failures AS
WITH counted AS (
    SELECT
        resource_id,
        arg_max(host_name, host_name_latest) AS host_name,
        arg_max(region_id, region_id_latest) AS region_id,
        arg_max(zone_id, zone_id_latest) AS zone_id,
        CAST(sum(tickets) AS BIGINT) AS tickets,
        CAST(sum(instances) AS BIGINT) AS instances,
        CAST(sum(failed) AS BIGINT) AS failed,
        max(last_failed_at) AS last_failed_at
    FROM mart_data.host_failure_parts_months
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
