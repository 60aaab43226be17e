"""What a build recomputes, and in what order: pure, from the registry and the changed days.

A build runs in three phases, each model after those it reads (``build_order``):

1. the per-day models (parts, then per-day marts), over table views of a group of days at a
   time: the changed days' rows are replaced (every day's on a full rebuild);
2. the rollups, month by month: the changed days' months are merged again from those months'
   parts, and each tally takes the difference (after the rollup it counts);
3. over the table views of every day, the marts merged from stored rows: a ``TRAILING`` mart
   replaces the rows of the days a change reaches (``reached_days``), reading the parts of
   ``read_days``; a ``WHOLE`` mart is recomputed whole.

``plan_build`` decides it; ``build.py`` executes it (how many days a group holds depends on
the Parquet footers, so the grouping is the execution's). Nothing here touches DuckDB.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from warehouse.marts import MODELS, Model, Rebuilt, Stage

#: the phase each kind of model runs in
_PHASE = {
    Rebuilt.PER_DAY: 0,
    Rebuilt.PER_MONTH: 1,
    Rebuilt.TALLY: 1,
    Rebuilt.TRAILING: 2,
    Rebuilt.WHOLE: 2,
}


@dataclass(frozen=True, kw_only=True)
class MergeStep:
    """A mart of the last phase: the days whose stored rows it replaces and the days of parts
    it reads (``build_window``); both None for every day (recomputed whole)."""

    model: Model
    replaces: tuple[date, ...] | None
    reads: tuple[date, ...] | None


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """What one build recomputes, in order."""

    #: why every day is recomputed ("asked", "no previous file", ...), or "" (incremental)
    full_reason: str
    #: the days the per-day models recompute (every day with files on a full rebuild)
    days: tuple[date, ...]
    #: the per-day models, in order, run over each group of ``days``
    per_day: tuple[Model, ...]
    #: the first days of the months the rollups recompute
    months: tuple[date, ...]
    #: the rollups, in order (each tally after the rollup it counts)
    rollups: tuple[Model, ...]
    #: the marts merged from stored rows, in order
    merged: tuple[MergeStep, ...]

    @property
    def full(self) -> bool:
        return bool(self.full_reason)

    @property
    def marts(self) -> tuple[str, ...]:
        """The marts it builds, by name."""
        models = (*self.per_day, *self.rollups, *(step.model for step in self.merged))
        return tuple(sorted(m.name for m in models if m.stage is Stage.MART))


def plan_build(
    *,
    days_present: Collection[date],
    changed: Collection[date],
    full_reason: str = "",
    models: Sequence[Model] = MODELS,
) -> BuildPlan:
    """The plan of a build: with ``full_reason``, a full rebuild over ``days_present`` (the
    days with files); else an incremental one over the ``changed`` days (new, changed or gone:
    a gone day's rows are deleted)."""
    days = sorted(days_present if full_reason else changed)
    ordered = build_order(models)
    merged: list[MergeStep] = []
    for model in ordered:
        if _PHASE[model.rebuilt] != 2:
            continue
        if full_reason or model.rebuilt is Rebuilt.WHOLE:
            merged.append(MergeStep(model=model, replaces=None, reads=None))
        else:
            reach = model.trailing_days
            merged.append(
                MergeStep(
                    model=model,
                    replaces=tuple(reached_days(days, reach)),
                    reads=tuple(read_days(days, reach)),
                )
            )
    return BuildPlan(
        full_reason=full_reason,
        days=tuple(days),
        per_day=tuple(m for m in ordered if _PHASE[m.rebuilt] == 0),
        months=tuple(sorted({day.replace(day=1) for day in days})),
        rollups=tuple(m for m in ordered if _PHASE[m.rebuilt] == 1),
        merged=tuple(merged),
    )


def build_order(models: Iterable[Model]) -> list[Model]:
    """``models`` in the order a build runs them: by phase, each after the models it reads,
    else by stage (parts before marts) and name. Refuses a model that reads one of a later
    phase, and models that read each other."""
    waiting = sorted(models, key=lambda m: (_PHASE[m.rebuilt], m.stage is not Stage.PART, m.name))
    known = {m.name: m for m in waiting}
    for model in waiting:
        for name in model.reads:
            source = known.get(name)
            if source is not None and _PHASE[source.rebuilt] > _PHASE[model.rebuilt]:
                raise ValueError(f"{model.name} reads {name}, which is built after it")
    placed: list[Model] = []
    done: set[str] = set()
    while waiting:
        ready = next(
            (m for m in waiting if all(r in done or r not in known for r in m.reads)), None
        )
        if ready is None:
            raise ValueError(f"models that read each other: {[m.name for m in waiting]}")
        placed.append(ready)
        done.add(ready.name)
        waiting.remove(ready)
    return placed


def reached_days(changed: Collection[date], reach: int) -> list[date]:
    """The days whose rows a change on ``changed`` moves: each day and the ``reach`` after."""
    return sorted({day + timedelta(days=k) for day in changed for k in range(reach + 1)})


def read_days(changed: Collection[date], reach: int) -> list[date]:
    """The days of parts needed to compute ``reached_days``: ``reach`` before each of them."""
    return sorted({day + timedelta(days=k) for day in changed for k in range(-reach, reach + 1)})
