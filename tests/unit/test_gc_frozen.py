"""``gc_frozen``: the run's older objects are left out of the collector's scans, then thawed."""

from __future__ import annotations

import gc

from pipelines.ingest import gc_frozen


def test_objects_older_than_the_run_are_frozen_during_it_and_thawed_after() -> None:
    assert gc.get_freeze_count() == 0
    older = [object()]
    with gc_frozen():
        assert gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        _ = [[object()] for _ in range(1000)]  # the run's own allocations are not frozen
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
    del older


def test_a_freeze_made_by_someone_else_is_not_undone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_frozen():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
