-- failure_rates_daily: how often do script runs fail, per day, region, availability zone,
-- application and script? One row per dt × region_id × zone_id × application × script_name.
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
-- A group whose instances all lack an outcome still has a row, with instances = 0 and a NULL
-- failure_rate. Keys are the instance's (dt is the ticket's creation day); script_name is the
-- ticket's, from script_orders joined on (execute_uuid, dt). NULL keys stay NULL.
CREATE OR REPLACE VIEW failure_rates_daily AS
-- Count per ticket first, then join the (small) per-ticket counts to script_orders for the
-- script name: the join then sees thousands of rows instead of every instance.
WITH per_ticket AS (
    SELECT
        dt,
        execute_uuid,
        region_id,
        zone_id,
        application,
        count(*) FILTER (WHERE status IN ('FINISHED', 'ABNORMAL', 'ROLLBACKED')) AS instances,
        count(*) FILTER (WHERE status = 'ABNORMAL') AS failed
    FROM execution_instances
    GROUP BY dt, execute_uuid, region_id, zone_id, application
),
counted AS (
    SELECT
        p.dt,
        p.region_id,
        p.zone_id,
        p.application,
        o.script_name,
        CAST(sum(p.instances) AS BIGINT) AS instances,
        CAST(sum(p.failed) AS BIGINT) AS failed
    FROM per_ticket AS p
    LEFT JOIN script_orders AS o
        ON o.execute_uuid = p.execute_uuid AND o.dt = p.dt
    GROUP BY p.dt, p.region_id, p.zone_id, p.application, o.script_name
)
SELECT
    dt,
    region_id,
    zone_id,
    application,
    script_name,
    instances,
    failed,
    CAST(failed AS DOUBLE) / nullif(instances, 0) AS failure_rate
FROM counted;
