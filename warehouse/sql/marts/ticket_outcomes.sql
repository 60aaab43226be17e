-- ticket_outcomes: how did each ticket end, and how many of its runs failed? One row per
-- ticket in script_orders (dt is its creation day), whether or not instances were ingested.
--
-- instances, failed and failure_rate as every mart counts them (macros.sql: counted,
-- failed, failure_rate).
--
-- status and duration_ms are the ticket's own (script_orders); batches = rows of
-- order_batches for the ticket; instances and failed are 0 for a ticket without instances.
CREATE OR REPLACE VIEW ticket_outcomes AS
WITH instance_counts AS (
    SELECT
        execute_uuid,
        dt,
        count(*) FILTER (WHERE counted(status)) AS instances,
        count(*) FILTER (WHERE failed(status)) AS failed
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
    failure_rate(c.failed, c.instances) AS failure_rate,
    o.duration_ms
FROM script_orders AS o
LEFT JOIN instance_counts AS c
    ON c.execute_uuid = o.execute_uuid AND c.dt = o.dt
LEFT JOIN batch_counts AS b
    ON b.execute_uuid = o.execute_uuid AND b.dt = o.dt;
