"""Loading one day's rows into its ``DayWriter``: page bodies in, Parquet row groups out.

Kept batch pages (``RawPage``: the body as received, and which records to keep) are
gathered until they hold ``flush_rows`` rows or ``flush_bytes`` bytes of bodies; then one
thread flattens them in Arrow (``pages.flatten_pages``) and writes them as a row group.
Arrow releases the GIL for nearly all of that, so the thread runs beside the fetching event
loop. At most
``MAX_PENDING_WRITES`` chunk is in the thread's hands, so memory stays bounded whatever the size
of the day. When the thread is that far behind, ``add`` blocks the event loop until it
catches up, on purpose: an awaitable wait is no faster (the loop has the thread's CPU to
share either way) and lets every concurrent batch walk park one more page meanwhile, so the
peak grows (the README's Performance section has the figures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future

import pyarrow as pa

from pipelines.coc.models import RawPage
from pipelines.extract.pages import PendingPage, flatten_documented, flatten_pages
from pipelines.lake.day_writer import DayWriter

log = logging.getLogger(__name__)

#: rows per flattened chunk and per Parquet row group: the peak memory stays flat whatever
#: the size of the day; larger chunks hold more, smaller ones cost more calls per row
FLUSH_ROWS = 10_000
#: bytes of page bodies per flattened chunk, at most (plus the page that passes it): pages of
#: large messages make smaller chunks, so the memory held stays bounded by bytes as well
FLUSH_BYTES = 32 * 2**20
#: chunks handed to the thread before the fetching loop waits for it: a second one is no
#: faster and holds more memory
MAX_PENDING_WRITES = 1


class InstanceLoader:
    """Buffers ``execution_instances`` pages and writes them, and whole tables, in order."""

    def __init__(
        self,
        writer: DayWriter,
        pool: Executor,
        flush_rows: int = FLUSH_ROWS,
        flush_bytes: int = FLUSH_BYTES,
        *,
        on_documented: Callable[[list[PendingPage]], None] | None = None,
    ) -> None:
        """``on_documented`` (a replay): hears, on the loader's thread, each chunk of pages
        whose bodies the flattening's one Arrow reading proved as documented (no drift)."""
        self.writer = writer
        self.on_documented = on_documented
        self.pool = pool
        self.flush_rows = flush_rows
        self.flush_bytes = flush_bytes
        self._pages: list[PendingPage] = []
        self._rows = 0
        self._bytes = 0
        self._pending: list[Future[None]] = []

    def add(self, execute_uuid: str, batch_index: int, page: RawPage) -> None:
        self._pages.append(PendingPage(execute_uuid, batch_index, page))
        self._rows += page.count
        self._bytes += len(page.body)
        if self._rows >= self.flush_rows or self._bytes >= self.flush_bytes:
            self._submit_pages()

    def add_table(self, table: str, batch: pa.RecordBatch) -> None:
        self._submit(self._write, table, batch)

    def add_job(self, make: Callable[[], pa.RecordBatch | None], table: str) -> None:
        """Build a batch of ``table`` on the loader's thread (``None``: nothing to write)."""
        self._submit(self._make_and_write, make, table)

    def _make_and_write(self, make: Callable[[], pa.RecordBatch | None], table: str) -> None:
        batch = make()
        if batch is not None:
            self._write(table, batch)

    def _submit_pages(self) -> None:
        pages, self._pages, self._rows, self._bytes = self._pages, [], 0, 0
        self._submit(self._flatten_and_write, pages)

    def _submit(self, job, *args) -> None:
        while len(self._pending) >= MAX_PENDING_WRITES:
            self._pending.pop(0).result()  # back-pressure, and surface an error now
        self._pending.append(self.pool.submit(job, *args))

    def _flatten_and_write(self, pages: list[PendingPage]) -> None:
        if self.on_documented is None:
            self._write("execution_instances", flatten_pages(pages))
            return
        batch, documented = flatten_documented(pages)
        self._write("execution_instances", batch)
        if documented:
            self.on_documented(pages)

    def _write(self, table: str, batch: pa.RecordBatch) -> None:
        self.writer.write(table, batch)
        # hand the encoder's scratch memory back, so the peak does not creep up with the day
        pa.default_memory_pool().release_unused()

    def finish(self) -> None:
        """Write what is buffered and wait for every write."""
        if self._pages:
            self._submit_pages()
        while self._pending:
            self._pending.pop(0).result()

    def drain_quietly(self) -> None:
        """Wait for queued writes after a failure; their own errors matter less."""
        self._pages, self._rows, self._bytes = [], 0, 0
        for pending in self._pending:
            try:
                pending.result()
            except Exception:
                log.debug("a queued write failed while aborting", exc_info=True)
        self._pending.clear()
