-- instances_daily: the dashboard's counts, per day, region, availability zone, application,
-- script and agent status. One row per dt × region_id × zone_id × application × script_name ×
-- agent_status: failure_rates_daily split once more by the host agent's status, so that every
-- headline figure, line and ranking of `coc-etl dashboard` reads this small table under any
-- filter instead of every instance.
--
-- instances, failed and failure_rate as every mart counts them (macros.sql: counted,
-- failed, failure_rate). script_name is the ticket's, from script_orders joined on
-- (execute_uuid, dt). NULL keys stay NULL. A group whose instances all lack an outcome still
-- has a row, with instances = 0 and a NULL failure_rate.
CREATE OR REPLACE VIEW instances_daily AS
-- Count per ticket first, then join the (small) per-ticket counts to script_orders for the
-- script name: the join then sees thousands of rows instead of every instance.
WITH per_ticket AS (
    SELECT
        dt,
        execute_uuid,
        region_id,
        zone_id,
        application,
        agent_status,
        count(*) FILTER (WHERE counted(status)) AS instances,
        count(*) FILTER (WHERE failed(status)) AS failed
    FROM execution_instances
    GROUP BY dt, execute_uuid, region_id, zone_id, application, agent_status
),
counted AS (
    SELECT
        p.dt,
        p.region_id,
        p.zone_id,
        p.application,
        o.script_name,
        p.agent_status,
        CAST(sum(p.instances) AS BIGINT) AS instances,
        CAST(sum(p.failed) AS BIGINT) AS failed
    FROM per_ticket AS p
    LEFT JOIN script_orders AS o
        ON o.execute_uuid = p.execute_uuid AND o.dt = p.dt
    GROUP BY p.dt, p.region_id, p.zone_id, p.application, o.script_name, p.agent_status
)
SELECT
    dt,
    region_id,
    zone_id,
    application,
    script_name,
    agent_status,
    instances,
    failed,
    failure_rate(failed, instances) AS failure_rate
FROM counted;
