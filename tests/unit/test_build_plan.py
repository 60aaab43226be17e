"""The build's plan: which models and days a build recomputes, and in what order. Pure: the
registry and the changed days in, a plan out; no DuckDB, no files."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from warehouse.marts import MARTS, MODELS, Model, Rebuilt, Stage, model
from warehouse.plan import BuildPlan, MergeStep, build_order, plan_build

D = date(2026, 3, 10)
HISTORY = [date(2026, 1, 20) + timedelta(days=k) for k in range(60)]  # 20 Jan .. 20 Mar


def days(first: date, last: date) -> tuple[date, ...]:
    return tuple(first + timedelta(days=k) for k in range((last - first).days + 1))


def step(plan: BuildPlan, name: str) -> MergeStep:
    return next(s for s in plan.merged if s.model.name == name)


def names(models: tuple[Model, ...]) -> list[str]:
    return [m.name for m in models]


def test_one_changed_day_recomputes_that_day_its_month_and_the_fortnight_it_reaches() -> None:
    plan = plan_build(days_present=HISTORY, changed=[D])
    assert not plan.full and plan.days == (D,)
    per_day = {m.name for m in MODELS if m.rebuilt is Rebuilt.PER_DAY}
    assert set(names(plan.per_day)) == per_day
    assert plan.months == (date(2026, 3, 1),)
    shifts = step(plan, "failure_shifts")
    assert shifts.replaces == days(D, D + timedelta(days=14))
    assert shifts.reads == days(D - timedelta(days=14), D + timedelta(days=14))
    # the marts merged from stored rows are small: recomputed whole
    for name in ("host_failures", "failure_messages", "alert_episodes"):
        assert step(plan, name).replaces is None and step(plan, name).reads is None
    assert plan.marts == tuple(m.name for m in MARTS)


def test_a_day_inside_a_trailing_window_is_recomputed_for_the_trailing_mart_only() -> None:
    """D + 3 did not change: the per-day marts keep its rows, failure_shifts (whose rows of
    D + 3 depend on D) recomputes them; two changes whose reaches overlap name each day once."""
    plan = plan_build(days_present=HISTORY, changed=[D, D + timedelta(days=5)])
    assert plan.days == (D, D + timedelta(days=5))
    assert D + timedelta(days=3) not in plan.days
    shifts = step(plan, "failure_shifts")
    assert shifts.replaces == days(D, D + timedelta(days=19))
    assert shifts.reads == days(D - timedelta(days=14), D + timedelta(days=19))
    assert D - timedelta(days=1) not in shifts.replaces


def test_changed_days_in_two_months_recompute_both_months_of_the_rollups() -> None:
    last_of_feb, first_of_mar = date(2026, 2, 28), date(2026, 3, 1)
    plan = plan_build(days_present=HISTORY, changed=[first_of_mar, last_of_feb])
    assert plan.days == (last_of_feb, first_of_mar)
    assert plan.months == (date(2026, 2, 1), first_of_mar)
    rollups = {m.name for m in MODELS if m.stage is Stage.ROLLUP}
    assert set(names(plan.rollups)) == rollups
    # the trailing mart's reach runs into March; the rollups stop at the changed months
    assert step(plan, "failure_shifts").replaces[-1] == date(2026, 3, 15)


def test_a_tally_comes_after_the_rollup_it_counts_and_a_mart_after_what_it_reads() -> None:
    plan = plan_build(days_present=HISTORY, changed=[D])
    rollups = names(plan.rollups)
    tally = model("failure_message_host_months")
    assert tally.rebuilt is Rebuilt.TALLY
    assert rollups.index(tally.tally_of) < rollups.index(tally.name)
    per_day = names(plan.per_day)
    assert per_day.index("instances_daily") < per_day.index("failure_rates_daily")
    assert all(m.stage is Stage.PART for m in plan.per_day[:4])  # parts before marts
    merged = [s.model.name for s in plan.merged]
    assert merged.index("failure_shifts") < merged.index("alert_episodes")
    # whatever order the registry lists them in
    assert build_order(reversed(MODELS)) == build_order(MODELS)


def test_a_full_rebuild_recomputes_every_day_month_and_mart_whole() -> None:
    plan = plan_build(days_present=reversed(HISTORY), changed=[D], full_reason="asked")
    assert plan.full and plan.full_reason == "asked"
    assert plan.days == tuple(HISTORY)
    assert plan.months == (date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1))
    assert all(s.replaces is None and s.reads is None for s in plan.merged)
    assert {s.model.name for s in plan.merged} == {
        m.name for m in MODELS if m.rebuilt in (Rebuilt.TRAILING, Rebuilt.WHOLE)
    }


def test_no_change_recomputes_nothing_but_the_whole_marts() -> None:
    plan = plan_build(days_present=HISTORY, changed=[])
    assert plan.days == () and plan.months == ()
    shifts = step(plan, "failure_shifts")
    assert shifts.replaces == () and shifts.reads == ()
    assert step(plan, "host_failures").replaces is None


def test_a_fresh_warehouse_plans_every_model_over_no_day() -> None:
    plan = plan_build(days_present=[], changed=[], full_reason="no previous file")
    assert plan.days == () and plan.months == ()
    assert len(plan.per_day) + len(plan.rollups) + len(plan.merged) == len(MODELS)


def _mart(name: str, rebuilt: Rebuilt, *reads: str, days: int = 0) -> Model:
    return Model(name=name, stage=Stage.MART, rebuilt=rebuilt, reads=reads, trailing_days=days)


def test_models_that_read_each_other_or_a_later_phase_are_refused() -> None:
    a = _mart("a", Rebuilt.WHOLE, "b")
    b = _mart("b", Rebuilt.WHOLE, "a")
    with pytest.raises(ValueError, match="read each other"):
        build_order([a, b])
    late = _mart("late", Rebuilt.WHOLE, "execution_instances")
    early = _mart("early", Rebuilt.PER_DAY, "late")
    with pytest.raises(ValueError, match="early reads late, which is built after it"):
        build_order([late, early])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stage": Stage.PART, "rebuilt": Rebuilt.WHOLE}, "a part cannot be"),
        ({"rebuilt": Rebuilt.TRAILING}, "trailing_days"),
        ({"rebuilt": Rebuilt.PER_DAY, "trailing_days": 3}, "trailing_days"),
        ({"rebuilt": Rebuilt.WHOLE, "episodes": True}, "episodes"),
        ({"reads": ()}, "reads names nothing"),
    ],
)
def test_an_entry_that_cannot_be_built_is_refused(fields: dict, message: str) -> None:
    entry = {
        "name": "m",
        "stage": Stage.MART,
        "rebuilt": Rebuilt.PER_DAY,
        "reads": ("execution_instances",),
    }
    with pytest.raises(ValueError, match=message):
        Model(**{**entry, **fields})
