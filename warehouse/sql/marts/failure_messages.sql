-- failure_messages: which errors do failing runs report, and how widespread is each? One row
-- per normalized message (message_pattern) over FAILED instances only, so that the same
-- error on different hosts, tickets and files groups together.
--
-- Only failed instances (macros.sql: failed) appear here.
--
-- message_pattern is the message with what varies masked (macros.sql: message_pattern).
--
-- instances  = failed instances with the pattern; tickets, hosts = distinct execute_uuid and
--              resource_id among them (a NULL resource_id is not a host).
-- first_seen, last_seen = earliest and latest failure time (finished_at, else created_at).
-- example_message = the raw message of the latest such failure (ties broken by the
--              instance's key). A NULL message gives the one row whose pattern is NULL.
CREATE OR REPLACE VIEW failure_messages AS
WITH failures AS (
    SELECT
        execute_uuid,
        batch_index,
        instance_id,
        resource_id,
        message,
        coalesce(finished_at, created_at) AS failed_at,
        message_pattern(message) AS message_pattern
    FROM execution_instances
    WHERE failed(status)
)
SELECT
    message_pattern,
    count(*) AS instances,
    count(DISTINCT execute_uuid) AS tickets,
    count(DISTINCT resource_id) AS hosts,
    min(failed_at) AS first_seen,
    max(failed_at) AS last_seen,
    any_value(message ORDER BY failed_at DESC NULLS LAST, execute_uuid DESC,
        batch_index DESC, instance_id DESC) AS example_message
FROM failures
GROUP BY message_pattern;
