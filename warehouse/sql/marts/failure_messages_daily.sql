-- failure_messages_daily: which errors do failing runs report, per day, region, application
-- and script? One row per dt × region_id × application × script_name × message_pattern over
-- failed instances only (macros.sql: failed): failure_messages split by day and the dashboard's filters.
--
-- message_pattern is failure_messages' normalization, written the same way (UUIDs, URLs, IP
-- addresses, paths, hex tokens and numbers masked; whitespace collapsed; 300 characters); a
-- test checks that both marts give every failure the same pattern.
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
        left(
            trim(
                i.message
                .regexp_replace(
                    '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
                    '<uuid>', 'g')
                .regexp_replace('\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s''"]+', '<url>', 'g')
                .regexp_replace(
                    '\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b'
                    || '|\b(?:[0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*\b',
                    '<ip>', 'g')
                .regexp_replace('\b(?:\d{1,3}\.){3}\d{1,3}\b', '<ip>', 'g')
                .regexp_replace('(^|[\s''"(\[=,:])/[^\s''"()\[\],;:]+', '\1<path>', 'g')
                .regexp_replace('\b[a-zA-Z]:\\[^\s''"]*', '<path>', 'g')
                .regexp_replace('\b0[xX][0-9a-fA-F]+\b', '<hex>', 'g')
                .regexp_replace('\b\d+\b', '<n>', 'g')
                .regexp_replace('\b[0-9a-fA-F]{8,}\b', '<hex>', 'g')
                .regexp_replace('\d+', '<n>', 'g')
                .regexp_replace('\s+', ' ', 'g')
            ),
            300
        ) AS message_pattern
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
