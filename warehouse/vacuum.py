"""Removing data files that no reader needs any more: Delta's vacuum, run by the build.

A file leaves a table's newest version when a later commit supersedes its day; it stays on
disk for readers that pinned an older version. The build of ``coc.duckdb`` vacuums each table
after it published the new file, under the build lock, removing only files that are

- superseded (or written and never committed, by a killed run) longer than the retention ago
  (``COC_VACUUM_RETENTION_HOURS``, default 7 days: longer than any query on a replaced
  ``coc.duckdb`` runs, and how far back ``coc-etl report --as-of`` reaches), and
- named by no version that the published ``coc.duckdb`` or the one it replaced pins
  (delta-rs's ``keep_versions``): a file a published ``coc.duckdb`` names is never removed,
  however old.

The vacuum lists what to remove (delta-rs, ``dry_run``) and deletes it itself; it writes
nothing to the log, so it never races a run's commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from deltalake import DeltaTable

from pipelines.lake.tables import Lake

__all__ = ["vacuum_tables"]

log = logging.getLogger(__name__)


def vacuum_tables(
    lake: Lake,
    keep: Mapping[str, set[int]],
    *,
    retention_h: float,
    delete: bool = True,
    opened: Mapping[str, DeltaTable] | None = None,
) -> dict[str, list[str]]:
    """Vacuum each table of ``keep`` (table -> versions whose files stay); returns the files
    removed per table (``delete=False``: the files it would remove). ``opened``: tables the
    caller opened earlier (the build's pinning), brought up to the newest version here by
    reading only the log's newer entries; the others are opened."""
    removed: dict[str, list[str]] = {}
    for table, versions in keep.items():
        found = (opened or {}).get(table)
        if found is not None:
            found.update_incremental()  # the newest version, as a fresh open would read it
        else:
            found = lake.open(table)
        if found is None:
            continue
        newest = found.version()
        # the newest version's files are never vacuumed: naming it would only make delta-rs
        # load that version's files once more
        kept = sorted(v for v in versions if 0 <= v < newest)
        doomed = found.vacuum(
            retention_hours=max(0, round(retention_h)),
            dry_run=True,
            enforce_retention_duration=False,
            full=True,
            keep_versions=kept or None,
        )
        doomed = [path for path in doomed if "/_delta_log/" not in f"/{path}"]
        if delete:
            for path in doomed:
                lake.delete_file(table, path)
        removed[table] = doomed
        if doomed:
            log.info("vacuum: %d files of %s removed", len(doomed), table)
    return removed
