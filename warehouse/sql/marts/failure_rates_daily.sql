-- failure_rates_daily: how often do script runs fail, per day, region, availability zone,
-- application and script? One row per dt × region_id × zone_id × application × script_name.
--
-- instances, failed and failure_rate as every mart counts them (macros.sql: counted,
-- failed, failure_rate).
--
-- A group whose instances all lack an outcome still has a row, with instances = 0 and a NULL
-- failure_rate. Keys are the instance's (dt is the ticket's creation day); script_name is the
-- ticket's, from script_orders joined on (execute_uuid, dt). NULL keys stay NULL.
-- build: per-day
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
        count(*) FILTER (WHERE counted(status)) AS instances,
        count(*) FILTER (WHERE failed(status)) AS failed
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
    failure_rate(failed, instances) AS failure_rate
FROM counted;
