-- host_failures: which hosts fail most, and when did each last fail? One row per host
-- (resource_id; instances without a target host form the one row whose resource_id is NULL).
--
-- How failure is counted (the same in every mart):
--   instances    = instances that reached an outcome: FINISHED, ABNORMAL or ROLLBACKED.
--   failed       = instances whose status is ABNORMAL.
--   failure_rate = failed / instances as a DOUBLE, NULL when instances = 0.
--   ROLLBACKED counts as a run but not as a failure: the script ran on the host and its change
--     was undone by the rollback policy, usually in reaction to a failure elsewhere, which is
--     counted on the host where it happened.
--   CANCELED is not counted: an operator or the rotation strategy stopped the instance before
--     it ran to an outcome, and counting it would dilute the rate of a ticket stopped after a
--     failure.
--   READY and PROCESSING are not counted yet: they have no outcome; the nightly
--     re-materialization of recent days picks them up once they finish.
--
-- tickets        = distinct tickets among the counted instances.
-- host_name, region_id, zone_id = the latest non-NULL value seen for the host, latest by the
--                  instance's created_at (then by its key, so that ties are deterministic).
-- last_failed_at = when the host's latest failure ended: max(finished_at, else created_at) over
--                  its ABNORMAL instances; NULL when it never failed.
-- A host whose instances all lack an outcome still has a row, with instances = 0.
CREATE OR REPLACE VIEW host_failures AS
WITH counted AS (
    SELECT
        resource_id,
        arg_max(host_name, latest) AS host_name,
        arg_max(region_id, latest) AS region_id,
        arg_max(zone_id, latest) AS zone_id,
        count(DISTINCT execute_uuid)
            FILTER (WHERE status IN ('FINISHED', 'ABNORMAL', 'ROLLBACKED')) AS tickets,
        count(*) FILTER (WHERE status IN ('FINISHED', 'ABNORMAL', 'ROLLBACKED')) AS instances,
        count(*) FILTER (WHERE status = 'ABNORMAL') AS failed,
        max(coalesce(finished_at, created_at)) FILTER (WHERE status = 'ABNORMAL')
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
    CAST(failed AS DOUBLE) / nullif(instances, 0) AS failure_rate,
    last_failed_at
FROM counted;
