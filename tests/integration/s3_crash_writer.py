"""Helper process for ``test_object_storage.py``: publish a day on S3, then be killed rewriting it.

    python s3_crash_writer.py WAREHOUSE_URI DAY MARKERS MODE LOCK_DIR

Reads the object-storage settings from the documented ``AWS_*`` variables. Publishes
version 1 of DAY (300 instances), touches ``MARKERS/v1`` and waits for ``MARKERS/go``; then
writes version 2 (120 instances) and touches ``MARKERS/stop`` at the moment the test must
kill it:

- ``mid-write``: version 2's staged objects are being written, not committed;
- ``before-manifest``: every table of version 2 is copied in, the manifest not written;
- ``after-manifest``: the manifest names version 2, nothing swept, the staging still there.

It then stalls until killed. Never run by pytest itself (the name does not start with test_).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

from pipelines.day_manifests import DayManifest, ManifestPublish

from pipelines import parquet
from pipelines.objectstore import S3Location, s3_filesystem
from pipelines.publish import StagedDay
from pipelines.settings import object_store_settings_from_env
from tests.integration.parquet_crash_writer import instances, write_day


def stall(markers: Path) -> None:
    (markers / "stop").touch()
    time.sleep(120)
    sys.exit("was not killed")


class StallingPublish(ManifestPublish):
    """Stalls just before the manifest is written, or just after."""

    def __init__(self, *args: object, markers: Path, mode: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.markers, self.mode = markers, mode

    def _commit(self, staged: StagedDay, new: DayManifest, copies: object) -> None:
        if self.mode == "before-manifest":
            stall(self.markers)
        super()._commit(staged, new, copies)  # type: ignore[arg-type]
        stall(self.markers)


def main(uri: str, day: dt.date, markers: Path, mode: str, lock_dir: str) -> None:
    settings = object_store_settings_from_env(os.environ)
    where = S3Location.parse(uri)
    fs = s3_filesystem(settings)

    def publisher(cls: type[ManifestPublish] = ManifestPublish, **kw: object) -> ManifestPublish:
        return cls(fs, where.path, retire_grace_s=0, location=where.uri, **kw)  # type: ignore[arg-type]

    with parquet.DayWriter(day=day, publisher=publisher(), lock_dir=lock_dir) as w:
        write_day(w, "v1", 300)
        w.commit()
    (markers / "v1").touch()
    while not (markers / "go").exists():
        time.sleep(0.005)

    if mode == "mid-write":
        with parquet.DayWriter(
            day=day, publisher=publisher(), lock_dir=lock_dir, row_group_rows=10
        ) as w:
            for i in range(100_000):
                w.write("execution_instances", instances(10, start=i * 10, tag="v2"))
                if i == 20:
                    (markers / "stop").touch()
                time.sleep(0.001)
        sys.exit("was not killed")

    stalling = publisher(StallingPublish, markers=markers, mode=mode)
    with parquet.DayWriter(day=day, publisher=stalling, lock_dir=lock_dir) as w:
        write_day(w, "v2", 120)
        w.commit()
    sys.exit("was not killed")


if __name__ == "__main__":
    main(
        sys.argv[1], dt.date.fromisoformat(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5]
    )
