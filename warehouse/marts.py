"""The build's registry: every SQL model of ``coc.duckdb`` and how a build recomputes it.

One entry per file of ``sql/parts``, ``sql/rollups`` and ``sql/marts`` (a test checks both
ways), declaring what its rows depend on and so what a change of some days recomputes:

- ``PER_DAY``: a day's rows depend on that day's partitions only (or on the stored rows of
  other per-day models of that day). Changed days are deleted and computed again, a group of
  days at a time (``store.py``).
- ``PER_MONTH``: a month's rows (``dt``, the month's first day) depend on that month's days of
  a per-day part only, read through ``build_window(dt)`` (``store.py``).
- ``TALLY``: in how many months each key of a per-month rollup appears, kept by difference
  when a month of that rollup is recomputed (``store.py``).
- ``TRAILING``: a day's rows depend on the per-day parts of that day and the ``days`` before
  it, read through ``build_window(dt)``; a change on day ``c`` recomputes ``c .. c + days``
  (``trailing.py``); with ``episodes``, its alerts are followed as episodes (``episodes.py``).
- ``WHOLE``: recomputed whole at every build from the stored rows it reads (parts merged per
  month, another mart's rows): small, so nothing to spare.

``reads`` names the contract tables and the models whose rows a model reads: the build runs a
model after those it reads (``plan.py``), and a test checks the names against its SQL. Parts
and rollups live in ``mart_data`` only; marts are views of their stored rows. The SQL files
hold SQL and a description comment, nothing the build parses for rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pipelines.transform.schemas import TABLES


class Stage(Enum):
    """Where a model's SQL lives (its folder under ``sql/``) and whether it is a view."""

    #: per-day figures that other models merge; in ``mart_data`` only
    PART = "parts"
    #: parts merged per month, or tallied over the months; in ``mart_data`` only
    ROLLUP = "rollups"
    #: what users query: a view of its stored rows
    MART = "marts"


class Rebuilt(Enum):
    """How a build recomputes a model's rows when some days changed."""

    PER_DAY = "per day"
    PER_MONTH = "per month"
    TALLY = "tally"
    TRAILING = "trailing"
    WHOLE = "whole"


#: what each stage may be rebuilt as
_KINDS = {
    Stage.PART: {Rebuilt.PER_DAY},
    Stage.ROLLUP: {Rebuilt.PER_MONTH, Rebuilt.TALLY},
    Stage.MART: {Rebuilt.PER_DAY, Rebuilt.TRAILING, Rebuilt.WHOLE},
}


@dataclass(frozen=True, kw_only=True)
class Model:
    """One SQL file of the build: its name (the file's stem and the view it creates), where it
    lives, how it is rebuilt, and what it reads."""

    name: str
    stage: Stage
    rebuilt: Rebuilt
    #: the contract tables and models whose rows it reads
    reads: tuple[str, ...]
    #: ``TRAILING``: how many days before a day its rows depend on
    trailing_days: int = 0
    #: ``TRAILING``: its ``alert`` and ``since`` follow episodes (``episodes.py``)
    episodes: bool = False

    def __post_init__(self) -> None:
        if self.rebuilt not in _KINDS[self.stage]:
            raise ValueError(f"{self.name}: a {self.stage.name.lower()} cannot be {self.rebuilt}")
        if (self.rebuilt is Rebuilt.TRAILING) != (self.trailing_days > 0):
            raise ValueError(f"{self.name}: trailing_days is for (and required by) TRAILING")
        if self.episodes and self.rebuilt is not Rebuilt.TRAILING:
            raise ValueError(f"{self.name}: episodes follow a TRAILING mart only")
        if not self.reads:
            raise ValueError(f"{self.name}: reads names nothing")
        if self.rebuilt is Rebuilt.TALLY and len(self.reads) != 1:
            raise ValueError(f"{self.name}: a tally counts the keys of one rollup")

    @property
    def tally_of(self) -> str:
        """The rollup a ``TALLY`` counts the months of."""
        if self.rebuilt is not Rebuilt.TALLY:
            raise ValueError(f"{self.name} is not a tally")
        return self.reads[0]

    @property
    def windowed(self) -> bool:
        """Whether its SQL must read through ``build_window(dt)``."""
        return self.rebuilt in (Rebuilt.PER_MONTH, Rebuilt.TALLY, Rebuilt.TRAILING)

    def describe(self) -> str:
        """How it is rebuilt, in words (``docs/marts.md``)."""
        if self.rebuilt is Rebuilt.PER_DAY:
            return "per day: a changed day's rows are replaced"
        if self.rebuilt is Rebuilt.PER_MONTH:
            return "per month: a changed day's month is merged again"
        if self.rebuilt is Rebuilt.TALLY:
            return f"tally of {self.tally_of}, kept by difference"
        if self.rebuilt is Rebuilt.TRAILING:
            text = (
                f"trailing {self.trailing_days} days: a change on day c replaces the rows of "
                f"c .. c + {self.trailing_days}"
            )
            return text + (", then its episodes from c on" if self.episodes else "")
        return "whole, at every build, from the stored rows it reads"


def _part(name: str, *reads: str) -> Model:
    return Model(name=name, stage=Stage.PART, rebuilt=Rebuilt.PER_DAY, reads=reads)


def _per_month(name: str, part: str) -> Model:
    return Model(name=name, stage=Stage.ROLLUP, rebuilt=Rebuilt.PER_MONTH, reads=(part,))


def _tally(name: str, rollup: str) -> Model:
    return Model(name=name, stage=Stage.ROLLUP, rebuilt=Rebuilt.TALLY, reads=(rollup,))


def _mart(name: str, rebuilt: Rebuilt, *reads: str, days: int = 0, episodes: bool = False) -> Model:
    return Model(
        name=name,
        stage=Stage.MART,
        rebuilt=rebuilt,
        reads=reads,
        trailing_days=days,
        episodes=episodes,
    )


_ORDERS, _BATCHES, _INSTANCES = "script_orders", "order_batches", "execution_instances"

#: every model of the build (the order here is irrelevant: ``plan.build_order``)
MODELS: tuple[Model, ...] = (
    _part("failure_message_hosts", _INSTANCES),
    _part("failure_message_parts", _INSTANCES),
    _part("failure_shift_counts", _INSTANCES, _ORDERS),
    _part("host_failure_parts", _INSTANCES),
    _per_month("failure_message_hosts_months", "failure_message_hosts"),
    _per_month("failure_message_parts_months", "failure_message_parts"),
    _per_month("host_failure_parts_months", "host_failure_parts"),
    _tally("failure_message_host_months", "failure_message_hosts_months"),
    _mart("instances_daily", Rebuilt.PER_DAY, _INSTANCES, _ORDERS),
    _mart("failure_rates_daily", Rebuilt.PER_DAY, "instances_daily"),
    _mart("failure_messages_daily", Rebuilt.PER_DAY, _INSTANCES, _ORDERS),
    _mart("host_failures_daily", Rebuilt.PER_DAY, _INSTANCES, _ORDERS),
    _mart("script_durations_daily", Rebuilt.PER_DAY, _INSTANCES, _ORDERS),
    _mart("ticket_outcomes", Rebuilt.PER_DAY, _INSTANCES, _BATCHES, _ORDERS),
    _mart("host_failures", Rebuilt.WHOLE, "host_failure_parts_months"),
    _mart(
        "failure_messages",
        Rebuilt.WHOLE,
        "failure_message_parts_months",
        "failure_message_host_months",
    ),
    _mart("failure_shifts", Rebuilt.TRAILING, "failure_shift_counts", days=14, episodes=True),
    _mart("alert_episodes", Rebuilt.WHOLE, "failure_shifts"),
)


def check_models(models: tuple[Model, ...]) -> None:
    """Refuse a registry whose entries cannot be built: a name twice, a read of something
    unknown, or a read that its rebuild cannot honour (a per-day model reading rows that are
    not per day, a rollup or trailing mart reading anything but a per-day part, a tally of
    anything but a per-month rollup). Cycles are refused by ``plan.build_order``."""
    by_name = {model.name: model for model in models}
    if len(by_name) != len(models):
        raise ValueError("a model is registered twice")
    for model in models:
        for name in model.reads:
            if name in TABLES:
                source = None
            elif name in by_name:
                source = by_name[name]
            else:
                raise ValueError(f"{model.name} reads {name}, neither a table nor a model")
            if model.rebuilt is Rebuilt.PER_DAY:
                allowed = source is None or source.rebuilt is Rebuilt.PER_DAY
            elif model.rebuilt in (Rebuilt.PER_MONTH, Rebuilt.TRAILING):
                allowed = source is not None and source.stage is Stage.PART
            elif model.rebuilt is Rebuilt.TALLY:
                allowed = source is not None and source.rebuilt is Rebuilt.PER_MONTH
            else:
                allowed = source is not None
            if not allowed:
                raise ValueError(f"{model.name}, rebuilt {model.rebuilt.value}, cannot read {name}")


check_models(MODELS)

#: the marts, by name: what users query
MARTS: tuple[Model, ...] = tuple(
    sorted((m for m in MODELS if m.stage is Stage.MART), key=lambda m: m.name)
)


def model(name: str) -> Model:
    """The registered model called ``name``."""
    for found in MODELS:
        if found.name == name:
            return found
    raise KeyError(f"no model {name!r} in warehouse/marts.py")
