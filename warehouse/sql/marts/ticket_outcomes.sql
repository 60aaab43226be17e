-- ticket_outcomes: how did each ticket end, and how many of its runs failed? One row per
-- ticket in script_orders (dt is its creation day), whether or not instances were ingested.
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
-- status and duration_ms are the ticket's own (script_orders); batches = rows of
-- order_batches for the ticket; instances and failed are 0 for a ticket without instances.
CREATE OR REPLACE VIEW ticket_outcomes AS
WITH instance_counts AS (
    SELECT
        execute_uuid,
        dt,
        count(*) FILTER (WHERE status IN ('FINISHED', 'ABNORMAL', 'ROLLBACKED')) AS instances,
        count(*) FILTER (WHERE status = 'ABNORMAL') AS failed
    FROM execution_instances
    GROUP BY execute_uuid, dt
),
batch_counts AS (
    SELECT execute_uuid, dt, count(*) AS batches
    FROM order_batches
    GROUP BY execute_uuid, dt
)
SELECT
    o.dt,
    o.execute_uuid,
    o.script_name,
    o.creator,
    o.status,
    coalesce(b.batches, 0) AS batches,
    coalesce(c.instances, 0) AS instances,
    coalesce(c.failed, 0) AS failed,
    CAST(c.failed AS DOUBLE) / nullif(c.instances, 0) AS failure_rate,
    o.duration_ms
FROM script_orders AS o
LEFT JOIN instance_counts AS c
    ON c.execute_uuid = o.execute_uuid AND c.dt = o.dt
LEFT JOIN batch_counts AS b
    ON b.execute_uuid = o.execute_uuid AND b.dt = o.dt;
