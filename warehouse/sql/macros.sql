-- How failures are counted, and how their messages are grouped: the one home of each rule,
-- for every mart and the report (message_pattern is at the end). The build creates these
-- macros before the marts; they stay in coc.duckdb, so any client can
-- call them too. Plain SQL macros, valid in DuckDB 1.1 and every later release.
--
--   failed(status)  an instance failed: its status is ABNORMAL.
--   counted(status) an instance reached an outcome and counts in the denominator:
--                   FINISHED, ABNORMAL or ROLLBACKED.
--   failure_rate(failed, instances)  failed / instances as a DOUBLE, NULL when instances = 0.
--
--   ROLLBACKED counts as a run but not as a failure: the script ran on the host and its change
--     was undone by the rollback policy, usually in reaction to a failure elsewhere, which is
--     counted on the host where it happened.
--   CANCELED is not counted: an operator or the rotation strategy stopped the instance before
--     it ran to an outcome, and counting it would dilute the rate of a ticket stopped after a
--     failure.
--   READY and PROCESSING are not counted yet: they have no outcome; the nightly
--     re-materialization of recent days picks them up once they finish.
CREATE OR REPLACE MACRO failed(status) AS status = 'ABNORMAL';
CREATE OR REPLACE MACRO counted(status) AS status IN ('FINISHED', 'ABNORMAL', 'ROLLBACKED');
CREATE OR REPLACE MACRO failure_rate(failed, instances) AS
    CAST(failed AS DOUBLE) / nullif(instances, 0);

-- message_pattern(message): a failure message with what varies masked, so that the same
--   error on different hosts, tickets and files reads the same (failure_messages and
--   failure_shifts group by it).
--   Masked in this order (RE2 via regexp_replace with 'g'):
--   UUIDs -> <uuid>; URLs (scheme://...) -> <url>; IPv6 (full, or compressed with ::) and
--   IPv4 addresses -> <ip>; absolute paths (/a/b/c after a start, space, quote, bracket,
--   '=', ',' or ':'; C:\a\b) -> <path>; 0x.. and hex tokens of 8+ characters -> <hex>;
--   every other run of digits -> <n>; whitespace collapsed to one space, trimmed, and the
--   pattern cut to 300 characters. Standalone numbers are masked before hex tokens, so a
--   long number reads <n>, not <hex>.
CREATE OR REPLACE MACRO message_pattern(message) AS
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
    );
