-- failure_message_parts_months: failure_message_parts merged per month (dt = the month's first
-- day), the way failure_messages merges them over every day: sums, min, max, and arg_max by the
-- order the example was chosen by, kept beside it. Stored in mart_data only; the build
-- recomputes the changed months, reading only their days' rows (build_window: see build.py).
CREATE OR REPLACE VIEW failure_message_parts_months AS
SELECT
    CAST(date_trunc('month', dt) AS DATE) AS dt,
    message_pattern,
    CAST(sum(instances) AS BIGINT) AS instances,
    CAST(sum(tickets) AS BIGINT) AS tickets,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen,
    arg_max(example_message, example_latest) AS example_message,
    max(example_latest) AS example_latest
FROM mart_data.failure_message_parts
WHERE build_window(dt)
GROUP BY ALL;
