-- How failures are counted: the one home of the rule, for every mart and the report. The
-- build creates these macros before the marts; they stay in coc.duckdb, so any client can
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
