-- failure_rates_daily: how often do script runs fail, per day, region, availability zone,
-- application and script? One row per dt × region_id × zone_id × application × script_name.
--
-- instances, failed and failure_rate as every mart counts them (macros.sql: counted,
-- failed, failure_rate).
--
-- A group whose instances all lack an outcome still has a row, with instances = 0 and a NULL
-- failure_rate. Keys are the instance's (dt is the ticket's creation day); script_name is the
-- ticket's, from script_orders joined on (execute_uuid, dt). NULL keys stay NULL.
--
-- The one aggregation of both marts lives in instances_daily, which splits these rows once
-- more by agent_status: this is its stored rows summed over agent_status (computed after it,
-- for the same changed days).
CREATE OR REPLACE VIEW failure_rates_daily AS
WITH counted AS (
    SELECT
        dt,
        region_id,
        zone_id,
        application,
        script_name,
        CAST(sum(instances) AS BIGINT) AS instances,
        CAST(sum(failed) AS BIGINT) AS failed
    FROM mart_data.instances_daily
    GROUP BY dt, region_id, zone_id, application, script_name
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
