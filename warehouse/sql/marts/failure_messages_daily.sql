-- failure_messages_daily: which errors do failing runs report, per day, region, application
-- and script? One row per dt × region_id × application × script_name × message_pattern over
-- failed instances only (macros.sql: failed): failure_messages split by day and the dashboard's filters.
--
-- message_pattern is failure_messages' normalization, the same macro (macros.sql:
-- message_pattern: UUIDs, URLs, IP addresses, paths, hex tokens and numbers masked;
-- whitespace collapsed; 300 characters); a test checks that both marts give every failure
-- the same pattern.
-- instances = failed instances with the pattern; last_seen = the latest failure's end
-- (finished_at, else created_at); example_message = the raw message of that latest failure
-- (ties broken by the instance's key). script_name is the ticket's, from script_orders.
CREATE OR REPLACE VIEW failure_messages_daily AS
WITH failures AS (
    SELECT
        i.dt,
        i.region_id,
        i.application,
        o.script_name,
        i.execute_uuid,
        i.batch_index,
        i.instance_id,
        i.message,
        coalesce(i.finished_at, i.created_at) AS failed_at,
        message_pattern(i.message) AS message_pattern
    FROM execution_instances AS i
    LEFT JOIN script_orders AS o
        ON o.execute_uuid = i.execute_uuid AND o.dt = i.dt
    WHERE failed(i.status)
)
SELECT
    dt,
    region_id,
    application,
    script_name,
    message_pattern,
    count(*) AS instances,
    max(failed_at) AS last_seen,
    any_value(message ORDER BY failed_at DESC NULLS LAST, execute_uuid DESC,
        batch_index DESC, instance_id DESC) AS example_message
FROM failures
GROUP BY dt, region_id, application, script_name, message_pattern;
