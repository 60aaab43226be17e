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
--
-- Merged from the per-day figures of mart_data.failure_message_parts and the per-day host
-- sets of mart_data.failure_message_hosts (parts/), rolled up per month (rollups/), the host
-- sets then tallied over every month (rollups/failure_message_host_months.sql), so that a
-- build after a run recomputes only the days that run changed and their months; the merge is
-- exact (see there).
CREATE OR REPLACE VIEW failure_messages AS
WITH hosts AS (
    -- one row per (message_pattern, resource_id) that appears in any month
    SELECT message_pattern, count(*) AS hosts
    FROM mart_data.failure_message_host_months
    GROUP BY message_pattern
),
merged AS (
    SELECT
        message_pattern,
        CAST(sum(instances) AS BIGINT) AS instances,
        CAST(sum(tickets) AS BIGINT) AS tickets,
        min(first_seen) AS first_seen,
        max(last_seen) AS last_seen,
        arg_max(example_message, example_latest) AS example_message
    FROM mart_data.failure_message_parts_months
    GROUP BY message_pattern
)
SELECT
    m.message_pattern,
    m.instances,
    m.tickets,
    coalesce(h.hosts, 0) AS hosts,
    m.first_seen,
    m.last_seen,
    m.example_message
FROM merged AS m
LEFT JOIN hosts AS h
    ON h.message_pattern IS NOT DISTINCT FROM m.message_pattern;
