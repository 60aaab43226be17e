-- failure_messages: which errors do failing runs report, and how widespread is each? One row
-- per normalized message (message_pattern) over FAILED instances only, so that the same
-- error on different hosts, tickets and files groups together.
--
-- Only failed instances (macros.sql: failed) appear here.
--
-- Normalization, in this order (RE2 via regexp_replace with 'g'):
--   UUIDs -> <uuid>; URLs (scheme://...) -> <url>; IPv6 (full, or compressed with ::) and
--   IPv4 addresses -> <ip>; absolute paths (/a/b/c after a start, space, quote, bracket,
--   '=', ',' or ':'; C:\a\b) -> <path>; 0x.. and hex tokens of 8+ characters -> <hex>;
--   every other run of digits -> <n>; whitespace collapsed to one space, trimmed, and the
--   pattern cut to 300 characters. Standalone numbers are masked before hex tokens, so a
--   long number reads <n>, not <hex>.
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
        left(
            trim(
                message
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
