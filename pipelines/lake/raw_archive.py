"""The raw archive: every response body a run used, kept per day as the ``raw_responses`` table.

Capture: the client hands each accepted 2xx body to a ``ResponseRecorder`` (its
``on_response`` hook) with the endpoint, the path, the query and the ticket, batch and marker
it asked about; never a header, so neither the signature nor the token can reach the
archive. The recorder buffers rows; the walk's sink hands each ``FLUSH_BYTES`` of bodies to
the day's loader thread, which writes it to the day's ``DayWriter`` like the instance pages
and, on the way, walks the bodies for schema drift (``pipelines/transform/drift.py``). The body is
stored as received (no second parse to store it), zstd-compressed by the Parquet writer. The
archive is a Delta table published with the day's tables, committed first of them
(``pipelines/lake/publish.py``): a re-run replaces its day whole.

Replay: ``load_archive`` reads a published day back through the table's log, and an
``ArchiveClient`` (``pipelines/replay.py``) answers the walk's requests from it, so the same
walk, the same paging checks and the same flattening re-derive the day's tables without one
request to the API. A request the archive cannot answer (the walk asked for something the
original run did not) fails naming it. Retention (``drop_expired``) is a Delta delete of the
old days.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, quote, urlencode

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from pipelines.coc import errors
from pipelines.coc import errors as coc_errors
from pipelines.errors import StorageError, UsageError
from pipelines.extract.pages import PendingPage
from pipelines.lake.tables import Lake
from pipelines.transform.drift import DriftTally
from pipelines.transform.schemas import RAW_RESPONSES

log = logging.getLogger(__name__)

RAW_TABLE = "raw_responses"
DRIFT_TABLE = "schema_drift"
#: bytes of bodies buffered before they go to the writer: memory stays flat whatever the day
FLUSH_BYTES = 8 << 20
#: the query parameter left out of a replay's key: a page asked for with another ``limit``
#: is still the page the original run used at that marker
_IGNORED_IN_KEY = frozenset({"limit"})


#: what identifies a request in the archive: its path and its sorted query pairs, but ``limit``
RequestKey = tuple[str, tuple[tuple[str, str], ...]]


def request_key(path: str, params: Sequence[tuple[str, str]]) -> RequestKey:
    """What identifies a request in the archive: its path and its sorted query, but ``limit``.

    The pairs as such, not their URL encoding: the same request either way (quoting is one
    to one), without quoting every pair of every request of a replay."""
    return path, tuple(sorted((k, v) for k, v in params if k not in _IGNORED_IN_KEY))


def replay_key(path: str, query: str) -> RequestKey:
    return request_key(path, _query_pairs(query))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``, without its unquoting when there is
    nothing to unquote (the archive's queries are mostly ``limit=50&marker=123``)."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


class ResponseRecorder:
    """The archive of one run's day: buffers rows and hands chunks to ``submit``.

    ``submit(table, batch)`` is the day loader's ``add_table``: it runs ``write`` on the
    loader's thread, in order with the instance pages. With ``archive=False`` (a replay) the
    bodies are only walked for drift, stamped with the time ``received_at`` gives them.
    """

    def __init__(
        self,
        *,
        day: dt.date,
        submit: Callable[[Callable[[], pa.RecordBatch | None], str], None],
        archive: bool = True,
        received_at: Callable[[str, str], int] | None = None,
        flush_bytes: int = FLUSH_BYTES,
        replay: ArchivedDay | None = None,
    ) -> None:
        self.day = day
        self._replay = replay
        self.drift = DriftTally(day)
        self._submit = submit
        self._archive = archive
        self._received_at = received_at
        self._flush_bytes = flush_bytes
        self._rows: list[tuple] = []
        self._bytes = 0
        self._seq = 0
        self._lock = threading.Lock()  # the tally is filled on the loader thread
        self.responses = 0
        self.body_bytes = 0

    def on_response(
        self,
        endpoint: str,
        path: str,
        params: Sequence[tuple[str, str]],
        where: errors.Where,
        status: int,
        body: bytes,
    ) -> None:
        if self._replay is not None:  # its drift comes from the archive, at the end
            self.responses += 1
            self.body_bytes += len(body)
            return
        query = urlencode(params, quote_via=quote) if params else ""
        if self._received_at is not None:
            at = self._received_at(path, query)
        else:
            at = time.time_ns() // 1_000_000
        self.responses += 1
        self.body_bytes += len(body)
        if not self._archive:  # a replay: the loader's thread flattens while this one walks
            if 200 <= status < 300:
                with self._lock:
                    self.drift.inspect(endpoint, body, at)
            return
        marker = where.get("marker")
        self._rows.append(
            (
                self._seq,
                at,
                endpoint,
                path,
                query,
                marker if isinstance(marker, int) else None,
                where.get("ticket"),
                where.get("batch"),
                status,
                body,
            )
        )
        self._seq += 1
        self._bytes += len(body)

    def flush_if_full(self) -> None:
        """Hand the buffer to the loader once it holds ``flush_bytes`` of bodies.

        Called by the walk's sink, never from the client's hook: handing a chunk over may
        raise an earlier chunk's error, which must not pass for the request's own.
        """
        if self._bytes >= self._flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Hand what is buffered to the loader's thread."""
        if not self._rows:
            return
        rows, self._rows, self._bytes = self._rows, [], 0
        self._submit(lambda: self._chunk(rows), RAW_TABLE)

    def _chunk(self, rows: list[tuple]) -> pa.RecordBatch | None:
        """On the loader's thread: walk the bodies for drift, build the archive's rows."""
        tally = DriftTally(self.day)
        for row in rows:
            if 200 <= row[8] < 300:
                tally.inspect(row[2], row[9], row[1])
        with self._lock:
            self.drift.merge(tally)
        if not self._archive:
            return None
        columns = list(zip(*rows, strict=True))
        at = pa.array(columns[1], pa.int64()).cast(RAW_RESPONSES.field("received_at").type)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(columns[0], pa.int64()),
                at,
                pa.array(columns[2], pa.string()),
                pa.array(["GET"] * len(rows), pa.string()),
                pa.array(columns[3], pa.string()),
                pa.array(columns[4], pa.string()),
                pa.array(columns[5], pa.int64()),
                pa.array(columns[6], pa.string()),
                pa.array(columns[7], pa.int32()),
                pa.array(columns[8], pa.int32()),
                pa.array(columns[9], pa.binary()),
            ],
            schema=RAW_RESPONSES,
        )

    def drift_batch(self) -> pa.RecordBatch:
        """The day's ``schema_drift`` rows; a replay's are the archive's (``ArchivedDay.drift``),
        once its pages are all flattened."""
        with self._lock:
            if self._replay is not None:
                self.drift = self._replay.drift()
            return self.drift.batch()


class ArchivedDay:
    """One published day of the archive, indexed by request.

    A replay's walk asks it for bodies (``body``); the get_batch pages it served are noted
    by ticket, batch and marker, so that the loader can say which of them its Arrow reading
    proved as documented (``documented``); ``drift`` then walks only the others.
    """

    def __init__(self, day: dt.date, data: pa.Table) -> None:
        self.day = day
        #: the ``body`` column as read (its chunks, not copied into one array)
        self.bodies = data.column("body")
        self._chunks = self.bodies.chunks
        self._starts = list(itertools.accumulate((len(c) for c in self._chunks), initial=0))
        self._endpoints = data.column("endpoint").to_pylist()
        self._stamps = data.column("received_at").cast(pa.int64()).to_pylist()
        paths = data.column("path").to_pylist()
        queries = data.column("query").to_pylist()
        statuses = data.column("status_code").to_pylist()
        #: the 2xx rows in the order the original run received them
        self._answers = [
            row
            for row in pc.sort_indices(data.column("seq")).to_pylist()
            if 200 <= statuses[row] < 300
        ]
        self.index: dict[RequestKey, int] = {}
        for row in self._answers:  # the first answer wins
            self.index.setdefault(replay_key(paths[row], queries[row]), row)
        #: (ticket, batch, marker) -> the archive row served for that get_batch page (-1:
        #: more than one)
        self._served: dict[tuple[object, object, object], int] = {}
        #: rows whose bodies the loader proved as documented
        self._documented: set[int] = set()

    def __len__(self) -> int:
        return len(self.index)

    def _body_at(self, row: int) -> bytes:
        chunk = bisect.bisect_right(self._starts, row) - 1
        return self._chunks[chunk][row - self._starts[chunk]].as_py()

    def body(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        where: errors.Where | None = None,
        endpoint: str = "",
    ) -> bytes:
        """The body the original run received for this request; ``ArchiveMissError`` if none."""
        row = self.index.get(request_key(path, params))
        if row is None:
            query = urlencode(params, quote_via=quote)
            raise ArchiveMissError(
                f"the raw archive of {self.day.isoformat()} has no response for "
                f"GET {path}{'?' + query if query else ''}: the original run did not ask it "
                "(was the day ingested with other settings, or another COC_TIMEZONE?)",
                path=path,
            )
        if endpoint == "get_batch" and where is not None:
            page = (where.get("ticket"), where.get("batch"), where.get("marker"))
            self._served[page] = row if self._served.get(page, row) == row else -1
        return self._body_at(row)

    def received_at(self, path: str, query: str) -> int:
        row = self.index.get(replay_key(path, query))
        return 0 if row is None else self._stamps[row]

    def documented(self, pages: Sequence[PendingPage]) -> None:
        """The loader's word (its thread) that these pages' bodies are as documented."""
        for p in pages:
            row = self._served.get((p.execute_uuid, p.batch_index, p.page.marker), -1)
            if row >= 0:
                self._documented.add(row)

    def drift(self) -> DriftTally:
        """The day's schema drift: every 2xx body of the archive, in the order the original
        run received them (as that run tallied it), walked against the documented schema;
        but those the loader proved as documented, which have none."""
        tally = DriftTally(self.day)
        for row in self._answers:
            if row not in self._documented:
                tally.inspect(self._endpoints[row], self._body_at(row), self._stamps[row])
        return tally


def load_archive(lake: Lake, fs: pafs.FileSystem, root: str, day: dt.date) -> ArchivedDay:
    """The day's published archive, read through the Delta log of ``raw_responses`` (only
    the files its newest version names: never a superseded run's, nor a killed run's
    uncommitted one); ``ArchiveMissingError`` naming the day when there is none.

    ``fs`` and ``root``: pyarrow's filesystem of the warehouse and the root's path in it.
    """
    files = [f"{root.rstrip('/')}/{RAW_TABLE}/{path}" for path in archive_files(lake, day)]
    table = ds.dataset(files, format="parquet", filesystem=fs, schema=RAW_RESPONSES)
    columns = ["seq", "received_at", "endpoint", "path", "query", "status_code", "body"]
    return ArchivedDay(day, table.to_table(columns=columns))


def archive_files(lake: Lake, day: dt.date) -> tuple[str, ...]:
    """The files of the day's archive its log names; ``ArchiveMissingError`` if none."""
    try:
        snapshot = lake.snapshot(RAW_TABLE)
    except Exception as exc:  # delta-rs's errors are not OSErrors
        raise StorageError(
            f"cannot read the raw archive's log at {lake.uri(RAW_TABLE)}: {exc}"
        ) from exc
    named = tuple(snapshot.files.get(day, ()))
    if not named:
        raise ArchiveMissingError(
            f"day {day.isoformat()} has no raw archive in {lake.uri(RAW_TABLE)}: it was never "
            "ingested with the archive on, or its archive is past retention; ingest it instead"
        )
    return named


class ArchiveMissError(coc_errors.ConfigError):
    """The replayed walk asked for a response the archive does not hold."""


class ArchiveMissingError(UsageError):
    """A day asked to be replayed has no raw archive (exit 2)."""


def drop_expired(
    lake: Lake, *, keep_days: int | None, today: dt.date, run_id: str
) -> list[dt.date]:
    """Remove the archive's days older than ``keep_days`` days before ``today`` from
    ``raw_responses``, in one Delta commit (a delete: the days leave the log at once, and the
    build's vacuum deletes their files after ``COC_VACUUM_RETENTION_HOURS``).

    Called after a day is published; returns the days removed. ``None`` keeps everything.
    The other tables are untouched.
    """
    if keep_days is None:
        return []
    oldest = today - dt.timedelta(days=keep_days)
    removed = lake.delete_days_before(RAW_TABLE, oldest, run_id=run_id)
    if removed:
        log.info("raw archive: removed %d day(s) past retention", len(removed))
    return removed


def archived_days(lake: Lake) -> list[dt.date]:
    """The days the archive holds now (through its log)."""
    return sorted(lake.snapshot(RAW_TABLE).files)
