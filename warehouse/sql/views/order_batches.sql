-- order_batches: one row per (execute_uuid, batch_index), a batch of a ticket as its batch
-- list names it, with the instance count the API announced (total_instances) and the count
-- that was ingested (instances_ingested).
--
-- Source: <warehouse>/order_batches/dt=YYYY-MM-DD/*.parquet, where dt is the day the ticket
-- was created (in COC_TIMEZONE) and comes from the folder name, typed DATE.
--
-- build.py fills in the placeholders: the column list with the contract's columns in their
-- order (dt follows), and the source with read_parquet(<absolute glob>, hive_partitioning =
-- true, hive_types = {'dt': DATE}), or with a typed empty relation of the same columns while
-- the table has no files yet.
CREATE OR REPLACE VIEW order_batches AS
SELECT {columns}, dt
FROM {source};
