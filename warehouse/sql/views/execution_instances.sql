-- execution_instances: one row per (execute_uuid, batch_index, instance_id), that is one
-- run of a ticket's script on one host, with the host's attributes as the API sent them.
--
-- Source: <warehouse>/execution_instances/dt=YYYY-MM-DD/*.parquet, where dt is the day the
-- ticket was created (in COC_TIMEZONE) and comes from the folder name, typed DATE, so that
-- `WHERE dt = DATE '...'` reads only that day's files. Staging folders are never matched.
--
-- build.py fills in the placeholders: the column list with the contract's columns in their
-- order (dt follows), and the source with read_parquet(<absolute glob>, hive_partitioning =
-- true, hive_types = {'dt': DATE}), or with a typed empty relation of the same columns while
-- the table has no files yet.
CREATE OR REPLACE VIEW execution_instances AS
SELECT {columns}, dt
FROM {source};
