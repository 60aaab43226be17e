-- failure_shifts: what is failing more than it used to, and since when? One row per day,
-- dimension and key with outcomes that day: its failure rate against its own 7-day baseline,
-- a score of how surprising the difference is, the alert decision and since when it holds.
--
-- Dimensions and their keys (NULL keys stay NULL and are keys like any other):
--   region          region_id
--   zone            zone_id
--   application     application
--   script          script_name (the ticket's, from script_orders)
--   script_version  script_name || ' ' || script_version_name (either alone if one is NULL)
--   host            resource_id
--   message_pattern the failure message masked (macros.sql: message_pattern)
--
-- instances, failed and failure_rate as every mart counts them (macros.sql: counted,
-- failed, failure_rate). For message_pattern, failed = the day's ABNORMAL
-- instances with that pattern and instances = every counted instance of the day, so its
-- failure_rate is the share of the day's runs that failed with that message.
--
-- Baseline: the key's own counts over the 7 calendar days before dt (dt-7 .. dt-1):
-- baseline_instances, baseline_failed, baseline_rate (NULL when baseline_instances = 0). For
-- message_pattern, baseline_instances = every counted instance of those days (a pattern that
-- never occurred there has baseline_failed = 0 of them).
--
-- score: the signed square root of the log-likelihood ratio statistic (G-test) of "the day's
--   rate differs from the reference rate" for two binomial samples, the day (failed of
--   instances) and the reference; positive when the day fails more, negative when less, 0
--   when equal. Under "nothing changed" it is close to a standard normal variable, so it
--   weighs the rate difference by both sample sizes: 3x on thousands of runs scores high,
--   3x on five runs does not. The reference is the key's baseline; a key without one (no
--   instances in the window: a new host, a new script version) is compared with its
--   dimension's pooled counts over the same window. On the first day of data nothing has a
--   reference: score is NULL. G is divided by the dimension's dispersion on that day before
--   the root (see `dispersion` below: runs of one ticket fail together, so rates vary more
--   from day to day than independent runs would), taken over the day and the same 7 days
--   before it.
-- the onset rule, all of
--   1. score beats a Bonferroni threshold over every key tested that day, all dimensions
--      together (m = rows of the day with a score): the one-sided p-value, bounded above by
--      the normal tail bound phi(z)/z, is below alpha/m with alpha = 0.05. So a day raises a
--      false alarm with probability at most about 5%, however many hosts or messages it
--      tests;
--   2. failed >= 5: a handful of instances never alerts;
--   3. failure_rate >= 2 x the reference rate: a tiny rise on a huge key is not news;
--   4. a key without a baseline alerts as new only when the data reaches back 7 days
--      before dt: on a younger warehouse its absence says nothing (a host that did not run
--      on the first day is not new), and an episode opened against its dimension would
--      last as long as such a host keeps failing as it always did.
-- alert and since follow the key's episode (warehouse/episodes.py): the rule above decides
--   the onset, the day an episode opens (since = that day). While it is open, each day of
--   the key is compared with the key's reference frozen at the onset (the baseline from
--   before since, not a window that takes in the shift): it stays open (alert = true, same
--   since) while the day scores at least 2.326 against that reference (one-sided 1%, on
--   the same dispersion) with at least twice its rate, or meets the onset rule again; it
--   closes on the first day it does neither (alert false). A day without instances of the
--   key leaves it open but quiet (no row; for message_pattern, a day with instances and
--   none failing with the pattern closes it). The episodes themselves: alert_episodes.
--   The columns starting with an underscore are the build's (the onset decision, the
--   reference and the dispersion the episodes use) and are not part of the view.
--
-- Built from the per-day counts of mart_data.failure_shift_counts (parts/), which a build
-- recomputes for the changed days only. A day's row depends on the counts of that day and
-- the 14 before it (its baseline: 7 days; its dispersion: the G of the day and the 7 before,
-- each with its own 7-day baseline), so a build recomputes the changed days and the 14 after
-- each (warehouse/trailing.py), reading the counts of the 14 days before those; the episodes,
-- which follow a key from its onset as far as it goes, are then replayed from the first
-- recomputed day on (from the onset of an episode open across it).
CREATE OR REPLACE VIEW failure_shifts AS
WITH params AS (
    SELECT
        0.05 AS alpha,
        5 AS min_failed,
        2.0 AS min_ratio
),
-- the per-day counts (parts/failure_shift_counts.sql), computed for the changed days only
daily AS (
    SELECT dt, dimension, key, instances, failed
    FROM mart_data.failure_shift_counts
    WHERE dimension <> '_day' AND build_window(dt)
),
day_totals AS (
    SELECT dt, instances
    FROM mart_data.failure_shift_counts
    WHERE dimension = '_day' AND build_window(dt)
),
-- the window before each day: per key, per dimension (pooled), and every instance
keyed AS (
    SELECT
        *,
        sum(instances) OVER key_window AS own_instances,
        sum(failed) OVER key_window AS own_failed
    FROM daily
    WINDOW key_window AS (
        PARTITION BY dimension, key ORDER BY dt
        RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND INTERVAL 1 DAY PRECEDING
    )
),
pooled AS (
    SELECT
        dt,
        dimension,
        sum(sum(instances)) OVER dim_window AS dim_instances,
        sum(sum(failed)) OVER dim_window AS dim_failed
    FROM daily
    GROUP BY dt, dimension
    WINDOW dim_window AS (
        PARTITION BY dimension ORDER BY dt
        RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND INTERVAL 1 DAY PRECEDING
    )
),
everything AS (
    SELECT
        dt,
        sum(instances) OVER (
            ORDER BY dt RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND INTERVAL 1 DAY PRECEDING
        ) AS all_instances,
        -- the data reaches back 7 days before dt: a key absent from them is known to be new
        count(*) OVER (
            ORDER BY dt RANGE BETWEEN INTERVAL 14 DAY PRECEDING AND INTERVAL 7 DAY PRECEDING
        ) > 0 AS seasoned
    FROM day_totals
),
baselined AS (
    SELECT
        k.dt,
        k.dimension,
        k.key,
        k.instances,
        k.failed,
        CAST(
            CASE
                WHEN k.dimension = 'message_pattern' THEN coalesce(e.all_instances, 0)
                ELSE coalesce(k.own_instances, 0)
            END AS BIGINT
        ) AS baseline_instances,
        CAST(coalesce(k.own_failed, 0) AS BIGINT) AS baseline_failed,
        coalesce(p.dim_instances, 0) AS dim_instances,
        coalesce(p.dim_failed, 0) AS dim_failed,
        coalesce(e.seasoned, false) AS seasoned
    FROM keyed AS k
    JOIN pooled AS p ON p.dt = k.dt AND p.dimension = k.dimension
    LEFT JOIN everything AS e ON e.dt = k.dt
),
-- the reference sample: the key's own baseline, else its dimension's pooled window
referenced AS (
    SELECT
        *,
        CAST(failed AS DOUBLE) AS a,
        CAST(instances AS DOUBLE) AS n,
        CAST(CASE WHEN baseline_instances > 0 THEN baseline_failed ELSE dim_failed END
            AS DOUBLE) AS b,
        CAST(CASE WHEN baseline_instances > 0 THEN baseline_instances ELSE dim_instances END
            AS DOUBLE) AS r
    FROM baselined
),
rates AS (
    SELECT
        *,
        a / n AS p1,
        b / nullif(r, 0) AS p0,
        (a + b) / (n + r) AS p
    FROM referenced
),
-- G = 2 * sum over the four cells of observed * ln(observed / expected under one rate);
-- a cell with nothing observed adds 0
tested AS (
    SELECT
        *,
        CASE WHEN r = 0 THEN NULL ELSE greatest(0.0,
            (CASE WHEN a = 0 THEN 0 ELSE a * ln(p1 / p) END)
            + (CASE WHEN n = a THEN 0 ELSE (n - a) * ln((1 - p1) / (1 - p)) END)
            + (CASE WHEN b = 0 THEN 0 ELSE b * ln(p0 / p) END)
            + (CASE WHEN r = b THEN 0 ELSE (r - b) * ln((1 - p0) / (1 - p)) END)
        ) END AS llr
    FROM rates
),
-- runs of one ticket fail together (same script, region, moment), so daily rates vary more
-- than independent runs would: G is divided by the dimension's dispersion on the day, the
-- median G of its tested keys over the day and the 7 days before it, divided by the median of
-- a chi-square with 1 degree of freedom (quasi-binomial scaling, robust to the few real
-- shifts), and never by less than 1
dispersion AS (
    SELECT DISTINCT
        dt,
        dimension,
        greatest(
            1.0,
            median(2 * llr) OVER (
                PARTITION BY dimension ORDER BY dt
                RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW
            ) / 0.4549364231195724
        ) AS phi
    FROM tested
    WHERE llr IS NOT NULL
),
scored AS (
    SELECT
        t.*,
        d.phi,
        sign(t.p1 - t.p0) * sqrt(2 * t.llr / d.phi) AS score,
        count(t.llr) OVER (PARTITION BY t.dt) AS tests
    FROM tested AS t
    LEFT JOIN dispersion AS d ON d.dt = t.dt AND d.dimension = t.dimension
),
decided AS (
    SELECT
        s.*,
        coalesce(
            s.score > 1
            -- phi(z) / z <= alpha / m, the Bonferroni bound on the one-sided p-value; the
            -- logarithms' arguments are clamped because DuckDB 1.1 evaluates every operand
            -- of AND, also for rows an earlier one rules out, and ln(0) is an error there
            AND s.score * s.score / 2 + ln(greatest(s.score, 1)) + ln(2 * pi()) / 2
                >= ln(greatest(s.tests, 1) / q.alpha)
            AND s.failed >= q.min_failed
            AND s.p1 >= q.min_ratio * s.p0
            AND (s.baseline_instances > 0 OR s.seasoned),
            false
        ) AS alert
    FROM scored AS s, params AS q
),
SELECT
    dt,
    dimension,
    key,
    CAST(instances AS BIGINT) AS instances,
    CAST(failed AS BIGINT) AS failed,
    failure_rate(failed, instances) AS failure_rate,
    baseline_instances,
    baseline_failed,
    failure_rate(baseline_failed, baseline_instances) AS baseline_rate,
    score,
    -- the onset decision; the episodes (warehouse/episodes.py) then set alert and since
    alert,
    CAST(NULL AS DATE) AS since,
    alert AS _onset,
    CAST(b AS BIGINT) AS _reference_failed,
    CAST(r AS BIGINT) AS _reference_instances,
    phi AS _dispersion
FROM decided;
