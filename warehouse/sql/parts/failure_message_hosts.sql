-- failure_message_hosts: the hosts (resource_id, never NULL) that reported each
-- message_pattern on each dt, one row per dt × message_pattern × resource_id: the distinct
-- sets from which failure_messages counts its distinct hosts over all days (distinct counts
-- of separate days do not add). Stored in mart_data only (not a view of its own).
CREATE OR REPLACE VIEW failure_message_hosts AS
SELECT DISTINCT
    dt,
    message_pattern(message) AS message_pattern,
    resource_id
FROM execution_instances
WHERE failed(status)
    AND resource_id IS NOT NULL;
