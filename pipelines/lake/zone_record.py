"""The warehouse's manifest: the zone its daily partitions were cut in.

``<root>/_warehouse.json`` (readers skip names that start with ``_``)::

    {"timezone": "Asia/Shanghai"}

A day's partition holds the tickets created between two midnights of ``COC_TIMEZONE``; a
run in another zone would cut other days, and the tickets near midnight would land in two
partitions. So the first run claims the zone for the warehouse (a warehouse without a
manifest is claimed by its next run, whatever zone its older days were cut in), and every
later run must use the same zone, until ``coc-etl repartition --timezone ZONE`` re-cuts
every day on purpose. While a repartition is under way the manifest says so
(``repartitioning_to``), and runs refuse to start until it has been finished.

On an ``s3://`` warehouse the manifest is read and written through the same S3 client as the
Parquet (``pipelines.lake.objectstore.s3_filesystem``, built from ``ObjectStoreSettings``), so the
endpoint, addressing style and credentials are the run's, never the SDK's own environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs

from pipelines.errors import ConfigError
from pipelines.lake.objectstore import S3Location, s3_filesystem
from pipelines.settings import ObjectStoreSettings

MANIFEST = "_warehouse.json"


@dataclass(frozen=True, kw_only=True)
class Manifest:
    timezone: str
    #: set while ``coc-etl repartition`` re-cuts the days into this zone
    repartitioning_to: str | None = None


def _filesystem(root: str, object_store: ObjectStoreSettings | None) -> tuple[pafs.FileSystem, str]:
    if "://" in root:  # s3:// only (S3Location says so otherwise)
        location = S3Location.parse(root)
        return s3_filesystem(object_store or ObjectStoreSettings()), location.path
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))


def read_manifest(root: str, *, object_store: ObjectStoreSettings | None = None) -> Manifest | None:
    """The warehouse's manifest, or None when it has none yet."""
    fs, base = _filesystem(root, object_store)
    path = f"{base}/{MANIFEST}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as stream:
        raw = stream.read()
    try:
        data = json.loads(raw)
        return Manifest(
            timezone=str(data["timezone"]), repartitioning_to=data.get("repartitioning_to")
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a warehouse manifest: {exc}") from None


def write_manifest(
    root: str, manifest: Manifest, *, object_store: ObjectStoreSettings | None = None
) -> None:
    """Write the manifest (on a local disk: to a temporary name, then renamed over)."""
    fs, base = _filesystem(root, object_store)
    body = (json.dumps(asdict(manifest), indent=2) + "\n").encode()
    path = f"{base}/{MANIFEST}"
    if isinstance(fs, pafs.LocalFileSystem):
        os.makedirs(base, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        return
    with fs.open_output_stream(path) as stream:
        stream.write(body)


def claim_zone(
    root: str, timezone: str, *, object_store: ObjectStoreSettings | None = None
) -> Manifest:
    """Check that ``timezone`` is the warehouse's zone; record it if it has none yet.

    ``object_store`` reaches an ``s3://`` root (``WarehouseSettings.object_store``).
    """
    manifest = read_manifest(root, object_store=object_store)
    if manifest is None:
        manifest = Manifest(timezone=timezone)
        write_manifest(root, manifest, object_store=object_store)
        return manifest
    if manifest.repartitioning_to is not None:
        raise ConfigError(
            f"a repartition of {root} into {manifest.repartitioning_to} did not finish: run "
            f"`coc-etl repartition --timezone {manifest.repartitioning_to}` again"
        )
    if manifest.timezone != timezone:
        raise ConfigError(
            f"COC_TIMEZONE is {timezone} but the warehouse {root} is partitioned in "
            f"{manifest.timezone}: set COC_TIMEZONE={manifest.timezone}, or re-cut every day "
            f"with `coc-etl repartition --timezone {timezone}`"
        )
    return manifest
