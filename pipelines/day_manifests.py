"""Publishing on object storage: a day is its manifest, and writing the manifest is the commit.

Object storage has no rename and no folder to swap, and a reader that lists a prefix can see
one run's objects next to another's. So on an ``s3://`` warehouse nothing reads by listing::

    <root>/<table>/dt=YYYY-MM-DD/part-<run_id>-00000.parquet   immutable, a unique name per run
    <root>/_manifests/dt=YYYY-MM-DD.json                        the day: which objects are it
    <root>/_manifests/views.json                                what coc.duckdb's views name

A day's manifest names, per table, the objects that are the day now, and the objects that
earlier runs published and this one superseded (``retired``, with the time they were).
The DuckDB build reads every manifest once and writes each table's view as
``read_parquet([the objects named])`` (``warehouse/build.py``); the file is then swapped in
whole. A reader of ``coc.duckdb`` therefore sees, for every day, exactly the objects of one
manifest: never a day twice, never half, and all three tables of a day from the same run.

The protocol of :class:`ManifestPublish` (the writer holds the day's lock throughout):

1. Copy each table's staged object to its unique published name (server-side copy). A copy
   that fails deletes the copies made so far; the manifest is untouched: nothing published.
2. Write the new manifest: one PUT replaces the object whole, so every reader gets the old
   manifest or the new one. The previous run's objects move to ``retired``, and so does any
   object under the day's prefixes that no manifest names (a killed run's copies).
3. Sweep: delete the retired objects that no published ``coc.duckdb`` can still name, after
   the grace period (``deletable``, reading ``views.json``: each publication of the file
   with the run of each day its views name), then write the manifest again without them.

A ``kill -9`` anywhere leaves a readable day: before step 2 the old manifest still names the
old objects, which nothing deleted; after it, the new one names the new objects. The next
run of the day retires the killed run's copies, and its staging goes as on a local disk.

The build calls ``sweep_all`` after it published ``coc.duckdb`` and recorded that in
``views.json``, so superseded objects go even when their day is not run again; it only
deletes objects and never rewrites a manifest (that is the day writer's, under its lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.publish import StagedDay, local_path

__all__ = [
    "MANIFESTS",
    "DayManifest",
    "ManifestPublish",
    "ViewsPublished",
    "deletable",
    "read_manifest",
    "read_manifests",
    "record_views",
    "sweep_all",
]

log = logging.getLogger(__name__)

MANIFESTS = "_manifests"
VIEWS_RECORD = "views.json"
_MANIFEST_NAME = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})\.json$")
_PART_NAME = re.compile(r"/part-(\d{8}T\d{12}Z-[0-9a-f]{8})-\d{5}\.parquet$")


@dataclass
class DayManifest:
    """Which objects are a day: per table, paths relative to the warehouse root."""

    day: dt.date
    run_id: str
    published_at: float
    tables: dict[str, list[str]]
    #: superseded objects not deleted yet: path -> when it was superseded (epoch seconds)
    retired: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {
            "format": 1,
            "day": self.day.isoformat(),
            "run_id": self.run_id,
            "published_at": self.published_at,
            "tables": self.tables,
            "retired": [{"path": p, "retired_at": t} for p, t in sorted(self.retired.items())],
        }
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> DayManifest:
        try:
            body = json.loads(data)
            return cls(
                day=dt.date.fromisoformat(body["day"]),
                run_id=str(body["run_id"]),
                published_at=float(body["published_at"]),
                tables={str(t): [str(p) for p in ps] for t, ps in body["tables"].items()},
                retired={str(r["path"]): float(r["retired_at"]) for r in body["retired"]},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where} is not a day manifest: {exc}") from None

    def named(self) -> set[str]:
        return {p for paths in self.tables.values() for p in paths}


@dataclass(frozen=True)
class ViewsPublished:
    """One publication of ``coc.duckdb``: when it was swapped in, and which run of each day
    (ISO date -> run id) its views name."""

    published_at: float
    runs: dict[str, str]


def manifest_path(root: str, day: dt.date) -> str:
    return f"{root}/{MANIFESTS}/dt={day.isoformat()}.json"


def read_manifest(fs: pafs.FileSystem, root: str, day: dt.date) -> DayManifest | None:
    path = manifest_path(root, day)
    try:
        with fs.open_input_stream(path) as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return DayManifest.from_json(data, path)


def read_manifests(fs: pafs.FileSystem, root: str) -> dict[dt.date, DayManifest]:
    """Every day's manifest under ``root``, by day."""
    out: dict[dt.date, DayManifest] = {}
    selector = pafs.FileSelector(f"{root}/{MANIFESTS}", allow_not_found=True)
    for info in fs.get_file_info(selector):
        found = _MANIFEST_NAME.match(info.base_name)
        if info.type == pafs.FileType.File and found:
            manifest = read_manifest(fs, root, dt.date.fromisoformat(found.group(1)))
            if manifest is not None:
                out[manifest.day] = manifest
    return out


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """One object, written whole (S3 makes it visible only once complete)."""
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_views(fs: pafs.FileSystem, root: str) -> list[ViewsPublished]:
    """The publications of ``coc.duckdb`` that readers may still be using, oldest first."""
    try:
        with fs.open_input_stream(f"{root}/{MANIFESTS}/{VIEWS_RECORD}") as f:
            body = json.loads(f.read())
        return [ViewsPublished(float(v["published_at"]), dict(v["runs"])) for v in body]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{root}/{MANIFESTS}/{VIEWS_RECORD} is unreadable: {exc}") from None


def record_views(
    fs: pafs.FileSystem, root: str, published: ViewsPublished, *, grace_s: float
) -> list[ViewsPublished]:
    """Add a publication of ``coc.duckdb``; forget those replaced more than ``grace_s`` ago.

    A forgotten publication's readers are done (the grace period is theirs), so what its
    views named no longer holds anything back.
    """
    views = [*read_views(fs, root), published]
    views.sort(key=lambda v: v.published_at)
    kept = [
        v
        for i, v in enumerate(views)
        if i == len(views) - 1 or views[i + 1].published_at > published.published_at - grace_s
    ]
    body = [{"published_at": v.published_at, "runs": v.runs} for v in kept]
    write_bytes(fs, f"{root}/{MANIFESTS}/{VIEWS_RECORD}", json.dumps(body).encode())
    return kept


def run_of(path: str) -> str | None:
    """The run that wrote a published object, from its name ``part-<run_id>-NNNNN.parquet``."""
    found = _PART_NAME.search(path)
    return found.group(1) if found else None


def deletable(
    day: dt.date,
    path: str,
    retired_at: float,
    views: list[ViewsPublished],
    *,
    now: float,
    grace_s: float,
) -> bool:
    """Whether an object of ``day`` superseded at ``retired_at`` can go.

    Not before ``grace_s`` after it was superseded (a build that read the old manifest may
    still be running). Then: if the newest publication of ``coc.duckdb`` names its run, never;
    if an older one did, once the publication that replaced the last of those is ``grace_s``
    old (readers mid-query on the old file); if none did, at once.
    """
    if now < retired_at + grace_s:
        return False
    run = run_of(path)
    naming = [i for i, v in enumerate(views) if run is not None and v.runs.get(str(day)) == run]
    if not naming:
        return True
    last = naming[-1]
    if last == len(views) - 1:
        return False
    return now >= views[last + 1].published_at + grace_s


def sweep(
    fs: pafs.FileSystem,
    root: str,
    manifest: DayManifest,
    views: list[ViewsPublished],
    now: float,
    grace_s: float,
) -> list[str]:
    """Delete the manifest's deletable retired objects; returns the ones gone."""
    gone: list[str] = []
    for path, retired_at in sorted(manifest.retired.items()):
        if path in manifest.named():
            continue
        if not deletable(manifest.day, path, retired_at, views, now=now, grace_s=grace_s):
            continue
        try:
            fs.delete_file(f"{root}/{path}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not delete the superseded %s (kept for later): %s", path, exc)
            continue
        gone.append(path)
    return gone


def sweep_all(
    fs: pafs.FileSystem,
    root: str,
    *,
    grace_s: float,
    clock: Callable[[], float] = time.time,
) -> int:
    """Delete every day's deletable retired objects (the manifests are left as they are)."""
    views = read_views(fs, root)
    now = clock()
    return sum(
        len(sweep(fs, root, m, views, now, grace_s)) for m in read_manifests(fs, root).values()
    )


class ManifestPublish:
    """Object storage: copy the staged objects in, then commit the day with its manifest.

    ``retire_grace_s`` is how long superseded objects outlive the last view naming them;
    ``clock`` is the time of ``retired_at`` and of the sweep (tests pass a fake one).
    """

    def __init__(
        self,
        fs: pafs.FileSystem,
        root: str,
        *,
        retire_grace_s: float,
        clock: Callable[[], float] = time.time,
        location: str | None = None,
    ) -> None:
        self.fs, self.root = fs, root.rstrip("/")
        self.local_root = local_path(fs, self.root)
        self.location = location or f"{fs.type_name}://{self.root.lstrip('/')}"
        self.retire_grace_s, self._clock = retire_grace_s, clock

    def publish(self, staged: StagedDay) -> None:
        try:
            old = read_manifest(self.fs, self.root, staged.day)
        except (OSError, ValueError) as exc:
            path = manifest_path(self.root, staged.day)
            raise staged.error(f"cannot read the day's manifest: {exc}", path=path) from exc
        copied = self._copy_in(staged)
        now = self._clock()
        new = DayManifest(
            day=staged.day,
            run_id=staged.run_id,
            published_at=now,
            tables={t: [p] for t, p in copied.items()},
            retired=dict(old.retired) if old else {},
        )
        try:
            strays = self._unnamed(staged, new.named() | set(new.retired))
        except OSError as exc:
            self._delete(copied.values())
            msg = f"listing the day's objects failed, nothing published: {exc}"
            raise staged.error(msg, path=f"{self.root}/{staged.partition}") from exc
        for path in (old.named() if old else set()) | strays:
            if path not in new.named():
                new.retired.setdefault(path, now)
        self._commit(staged, new, copied.values())
        try:
            views = read_views(self.fs, self.root)
            gone = sweep(self.fs, self.root, new, views, self._clock(), self.retire_grace_s)
        except (OSError, ValueError) as exc:  # published; a later run or build sweeps
            log.warning("superseded objects of %s not swept: %s", staged.day, exc)
            return
        if gone:
            for path in gone:
                del new.retired[path]
            try:
                write_bytes(self.fs, manifest_path(self.root, staged.day), new.to_json())
            except OSError as exc:  # the day is published; the next run drops the names
                log.warning("could not rewrite the manifest of %s: %s", staged.day, exc)

    def recover(self, staged: StagedDay) -> None:
        """Nothing to undo: published objects are never moved; stray copies are retired."""

    def _copy_in(self, staged: StagedDay) -> dict[str, str]:
        """Copy each staged table to its published name; on failure delete the copies."""
        name = staged.file_name
        copied: dict[str, str] = {}
        for table in staged.tables:
            relative = f"{table}/{staged.partition}/{name}"
            try:
                if self.local_root is not None:  # object stores need no folders
                    self.fs.create_dir(f"{self.root}/{table}/{staged.partition}", recursive=True)
                self.fs.copy_file(f"{staged.staged(table)}/{name}", f"{self.root}/{relative}")
                copied[table] = relative
            except (OSError, pa.ArrowException) as exc:
                self._delete(copied.values())
                msg = f"copying the day in failed, nothing published: {exc}"
                raise staged.error(msg, table=table, path=staged.published(table)) from exc
        return copied

    def _commit(self, staged: StagedDay, new: DayManifest, copies: Iterable[str]) -> None:
        path = manifest_path(self.root, staged.day)
        try:
            if self.local_root is not None:
                self.fs.create_dir(f"{self.root}/{MANIFESTS}", recursive=True)
            write_bytes(self.fs, path, new.to_json())
        except (OSError, pa.ArrowException) as exc:
            with contextlib.suppress(OSError, ValueError):  # did the PUT land after all?
                now = read_manifest(self.fs, self.root, staged.day)
                if now is not None and now.run_id == staged.run_id:
                    return
            self._delete(copies)
            msg = f"writing the day's manifest failed, nothing published: {exc}"
            raise staged.error(msg, path=path) from exc

    def _unnamed(self, staged: StagedDay, known: set[str]) -> set[str]:
        """Objects under the day's prefixes that no manifest names: a killed run's copies."""
        found: set[str] = set()
        for table in staged.tables:
            prefix = f"{table}/{staged.partition}"
            selector = pafs.FileSelector(f"{self.root}/{prefix}", allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                relative = f"{prefix}/{info.base_name}"
                if info.type == pafs.FileType.File and relative not in known:
                    found.add(relative)
        return found

    def _delete(self, paths: Iterable[str]) -> None:
        for path in paths:
            with contextlib.suppress(OSError):  # else the next run of the day retires it
                self.fs.delete_file(f"{self.root}/{path}")
