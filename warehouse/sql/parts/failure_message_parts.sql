-- failure_message_parts: failure_messages' figures per dt × message_pattern, from which
-- failure_messages is merged (with failure_message_hosts for its distinct hosts). Stored in
-- mart_data only (not a view of its own); see build.py.
--
-- Every column merges exactly across days: instances add; tickets add too, since a ticket's
-- instances all lie in its creation day's partition (dt), so no ticket is counted on two
-- days; first_seen and last_seen are a min and a max; example_message is the day's first
-- non-NULL message in the order "latest failure first" with that order's key
-- (example_latest), so the merge takes the latest day's choice with arg_max.
CREATE OR REPLACE VIEW failure_message_parts AS
WITH failures AS (
    SELECT
        execute_uuid,
        message,
        coalesce(finished_at, created_at) AS failed_at,
        -- failed_at descending with unknown ones last, then the instance's key descending
        -- (a named struct: DuckDB 1.1's storage format stores no unnamed ones)
        {'known': finished_at IS NOT NULL OR created_at IS NOT NULL,
            'failed_at': coalesce(finished_at, created_at, TIMESTAMPTZ '-infinity'),
            'execute_uuid': execute_uuid, 'batch_index': batch_index,
            'instance_id': instance_id} AS latest,
        dt,
        message_pattern(message) AS message_pattern
    FROM execution_instances
    WHERE failed(status)
)
SELECT
    dt,
    message_pattern,
    count(*) AS instances,
    count(DISTINCT execute_uuid) AS tickets,
    min(failed_at) AS first_seen,
    max(failed_at) AS last_seen,
    arg_max(message, latest) AS example_message,
    max(latest) FILTER (WHERE message IS NOT NULL) AS example_latest
FROM failures
GROUP BY dt, message_pattern;
