"""What is checked before a run sends its first request.

A run that would fail only after fetching a whole day spends minutes of API quota for
nothing, so everything that can be known up front is checked here: the warehouse root is a
folder that takes new files, its path has no glob characters (the DuckDB views glob it), and
the warehouse was cut in the run's zone (``pipelines/manifest.py``). The DuckDB file's place
is checked by ``warehouse.build.check_build_target``; callers run both.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.coc.errors import ConfigError
from pipelines.manifest import claim_zone
from pipelines.objectstore import check_access
from pipelines.settings import WarehouseSettings

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
