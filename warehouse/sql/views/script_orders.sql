-- script_orders: one row per ticket (execute_uuid), from the ticket list and the ticket's
-- detail: who ran which script version, its status, timing and size.
--
-- Source: <warehouse>/script_orders/dt=YYYY-MM-DD/*.parquet, where dt is the day the ticket
-- was created (in COC_TIMEZONE) and comes from the folder name, typed DATE. A ticket and its
-- batches and instances share the same dt, so joins use (execute_uuid, dt).
--
-- build.py fills in the placeholders: the column list with the contract's columns in their
-- order (dt follows), and the source with read_parquet(<absolute glob>, hive_partitioning =
-- true, hive_types = {'dt': DATE}), or with a typed empty relation of the same columns while
-- the table has no files yet.
CREATE OR REPLACE VIEW script_orders AS
SELECT {columns}, dt
FROM {source};
