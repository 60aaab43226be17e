-- alert_episodes: which keys have been failing above their usual rate, from when to when? One
-- row per episode of failure_shifts (a key's unbroken period of elevated failures, opened by
-- an onset and followed against the key's reference frozen at that onset; the rule is in
-- failure_shifts.sql and warehouse/episodes.py).
--
--   dimension, key   as in failure_shifts
--   opened           the onset day (failure_shifts.since while it is open)
--   last_alerted     the last day with alert = true (a day without instances is quiet)
--   closed           the first day the key was back; NULL while the episode is open
--   days             calendar days open: closed - opened, or up to and including the newest
--                    day of failure_shifts while open
--   peak_score       the highest score of its alert days against the frozen reference
--   baseline_rate    the frozen reference's failure rate (the key's 7 days before the onset,
--                    or its dimension's for a key that had none)
--   failure_rate, instances, failed   over the episode's alert days
CREATE OR REPLACE VIEW alert_episodes AS
SELECT
    e.dimension,
    e.key,
    e.opened,
    e.last_alerted,
    e.closed,
    CAST(coalesce(e.closed, n.newest + 1) - e.opened AS BIGINT) AS days,
    e.peak_score,
    failure_rate(e.baseline_failed, e.baseline_instances) AS baseline_rate,
    failure_rate(e.failed, e.instances) AS failure_rate,
    e.instances,
    e.failed
FROM mart_data.failure_shift_episodes AS e,
    (SELECT max(dt) AS newest FROM mart_data.failure_shifts) AS n;
