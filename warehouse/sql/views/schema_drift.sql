-- schema_drift: one row per day × endpoint × field path × kind, what the COC API sent that
-- its documented schema does not say: an unexpected field (at any level, host properties
-- included), a missing field that a contract column maps, or a value of another type than
-- documented. count is how many times that day, first_seen the first response showing it,
-- example_value one value as sent (never kept when the field's name says it is a secret).
--
-- Source: <warehouse>/schema_drift/dt=YYYY-MM-DD/*.parquet, published with the day's tables.
-- Not a contract table: the report and the dashboard read it.
CREATE OR REPLACE VIEW schema_drift AS
SELECT {columns}, dt
FROM {source};
