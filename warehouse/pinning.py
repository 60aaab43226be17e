"""Which files ``coc.duckdb`` names: one version of each Delta table, each day from one run.

The build pins one version of each table and writes each table's view over exactly the files
of that version (``read_parquet([...])``), so a reader of ``coc.duckdb`` never sees a file
that a later commit superseded next to its replacement, nor a file the vacuum removed (the
vacuum keeps the pinned versions' files: ``warehouse/vacuum.py``).

Delta has no commit across tables: a run commits its day to ``execution_instances``, then
``script_orders``, then ``order_batches`` (``pipelines/lake/publish.py``). So the build reads
``order_batches`` first: the run that its version names for a day is the day's run. The other
tables are read after it, so they are at least as new; a day where one of them names another
run (a run of the day between its commits, or killed between them) is taken from the older
version of that table that the marker's run committed (found by the ``coc_run``/``coc_day``
commit info), and a day the marker does not have yet is left out. Every day of
``coc.duckdb`` therefore shows the three tables of one run. The build pins the
``schema_drift`` side table the same way (a run commits it before the marker too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from deltalake import DeltaTable

from pipelines.lake.publish import MARKER
from pipelines.lake.tables import Lake, TableSnapshot, run_of, snapshot_of

__all__ = ["Pinned", "pin_tables"]


@dataclass
class Pinned:
    """The pinned state of the tables: each table's version, the files of each (table, day)
    as URIs, the signature of each (table, day) (``warehouse/changes.py``), and every version
    whose files the views name (the vacuum keeps them); and each table as it was opened to
    pin it (the vacuum brings it up to date instead of reading its whole log again)."""

    versions: dict[str, int | None] = field(default_factory=dict)
    files: dict[tuple[str, date], list[str]] = field(default_factory=dict)
    signatures: dict[tuple[str, date], str] = field(default_factory=dict)
    named_versions: dict[str, set[int]] = field(default_factory=dict)
    opened: dict[str, DeltaTable] = field(default_factory=dict, repr=False)


def pin_tables(lake: Lake, tables: Iterable[str], *, as_of: datetime | None = None) -> Pinned:
    """Pin a version of each of ``tables`` (the newest, or the one of ``as_of``)."""
    names = list(tables)
    order = [t for t in names if t == MARKER] + [t for t in names if t != MARKER]
    pinned = Pinned()
    marker_runs: dict[date, frozenset[str | None]] | None = None
    for table in order:
        found = lake.open(table, as_of=as_of)
        if found is None:
            snap = TableSnapshot(table=table, version=None)
        else:
            snap = snapshot_of(table, found)
            pinned.opened[table] = found
        files = dict(snap.files)
        signatures = dict(snap.signatures)
        named = {snap.version} if snap.version is not None else set()
        if table == MARKER:
            marker_runs = {day: _runs(paths) for day, paths in files.items()}
        elif marker_runs is not None and MARKER in names:
            for day in sorted(files):
                want = marker_runs.get(day)
                if want is None:
                    if None not in _runs(files[day]):  # a run yet to commit its marker
                        del files[day], signatures[day]
                    continue
                have = _runs(files[day])
                if have == want or None in want | have or len(want) != 1:
                    continue  # the same run, or files of no known run (migrated, by hand)
                older = _committed_by(lake, table, next(iter(want)), day, found)
                if older is None:
                    continue  # its commit is gone from the log: the newest is all there is
                files[day] = tuple(older.files.get(day, ()))
                signatures[day] = older.signatures.get(day, "")
                if older.version is not None:
                    named.add(older.version)
        pinned.versions[table] = snap.version
        pinned.named_versions[table] = named
        for day, paths in files.items():
            pinned.files[(table, day)] = [f"{lake.uri(table)}/{p}" for p in paths]
            pinned.signatures[(table, day)] = signatures[day]
    return pinned


def _runs(paths: Iterable[str]) -> frozenset[str | None]:
    return frozenset(run_of(p) for p in paths)


def _committed_by(
    lake: Lake, table: str, run_id: str | None, day: date, found: DeltaTable | None
) -> TableSnapshot | None:
    if run_id is None:
        return None
    version = lake.version_of_run(table, run_id=run_id, day=day, found=found)
    return None if version is None else lake.snapshot(table, version=version)
