"""What is checked before a run sends its first request.

A run that would fail only after fetching a whole day spends minutes of API quota for
nothing, so everything that can be known up front is checked here: the warehouse root is a
folder that takes new files, its path has no glob characters (the DuckDB views glob it), and
the warehouse was cut in the run's zone (``pipelines/lake/zone_record.py``), and
``COC_DUCKDB`` can take the build (``warehouse/publish.py``: a file the build wrote, in a
folder it may write). ``check_before_run`` is the one pre-flight of a run, for ``coc-etl``
and the Dagster assets alike; each failure is a ``ConfigError`` (exit 2) naming what is wrong,
and nothing has been changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.errors import ConfigError
from pipelines.lake.objectstore import check_access
from pipelines.lake.zone_record import claim_zone
from pipelines.settings import WarehouseSettings
from warehouse.publish import BuildError
from warehouse.publish import check_build_target as _check_target

_GLOB_CHARACTERS = frozenset("*?[]{}")


def check_warehouse(wh: WarehouseSettings) -> None:
    """Raise a ``ConfigError`` naming the variable when the warehouse cannot take the run."""
    if "://" not in wh.warehouse:
        root = Path(wh.warehouse).expanduser().resolve()
        if _GLOB_CHARACTERS & set(str(root)):
            raise ConfigError(
                f"COC_WAREHOUSE={wh.warehouse!r} contains glob characters (*?[]{{}}), "
                "which the DuckDB views would read as patterns: rename the folder"
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"COC_WAREHOUSE={wh.warehouse!r} is not a folder this run can write "
                f"({exc.strerror or exc})"
            ) from None
    if wh.object_store is not None:  # bucket, credentials, endpoint: before anything is read
        check_access(wh.warehouse, wh.object_store)
    claim_zone(wh.warehouse, wh.timezone, object_store=wh.object_store)


def check_coc_duckdb(duckdb_path: str) -> None:
    """``COC_DUCKDB`` can take the build, else a ``ConfigError`` naming the file (untouched)."""
    try:
        _check_target(duckdb_path)
    except BuildError as exc:
        raise ConfigError(str(exc)) from None


def check_before_run(wh: WarehouseSettings) -> None:
    """The pre-flight of a run: the warehouse (root, zone, object store) and the build target."""
    check_warehouse(wh)
    check_coc_duckdb(wh.duckdb_path)
