"""Loading one day's rows into its ``DayWriter``: column buffers, one Parquet writer thread.

Decoded pages are appended to ``InstanceColumns``; every ``flush_rows`` rows the buffers
become one record batch, handed to a single writer thread that encodes and compresses
Parquet (pyarrow releases the GIL there) while the caller goes on decoding. At most
``MAX_PENDING_WRITES`` batch waits for that thread, so memory stays bounded whatever the
size of the day. Used in the ingesting process or in the flatten worker (``offload.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from pipelines.coc.models import Instance
from pipelines.flatten import InstanceColumns
from pipelines.parquet import DayWriter

log = logging.getLogger(__name__)

#: rows per record batch and per Parquet row group: measured (``bench/``) to keep the
#: flattening process near 240 MiB at any size of day, without slowing it down
FLUSH_ROWS = 20_000
MAX_PENDING_WRITES = 1


class InstanceLoader:
    """Buffers ``execution_instances`` rows and writes them, and whole tables, in order."""

    def __init__(
        self, writer: DayWriter, pool: ThreadPoolExecutor, flush_rows: int = FLUSH_ROWS
    ) -> None:
        self.writer = writer
        self.pool = pool
        self.flush_rows = flush_rows
        self.columns = InstanceColumns()
        self._pending: list[Future[None]] = []

    def add(self, execute_uuid: str, batch_index: int, instances: Sequence[Instance]) -> None:
        self.columns.append(execute_uuid, batch_index, instances)
        if self.columns.rows >= self.flush_rows:
            self._submit("execution_instances", self.columns.take())

    def add_table(self, table: str, batch: pa.RecordBatch) -> None:
        self._submit(table, batch)

    def _submit(self, table: str, batch: pa.RecordBatch) -> None:
        while len(self._pending) >= MAX_PENDING_WRITES:
            self._pending.pop(0).result()  # back-pressure, and surface a write error now
        self._pending.append(self.pool.submit(self._write, table, batch))

    def _write(self, table: str, batch: pa.RecordBatch) -> None:
        self.writer.write(table, batch)
        # hand the encoder's scratch memory back, so the peak does not creep up with the day
        pa.default_memory_pool().release_unused()

    def finish(self) -> None:
        """Write what is buffered and wait for every write."""
        if self.columns.rows:
            self._submit("execution_instances", self.columns.take())
        while self._pending:
            self._pending.pop(0).result()

    def drain_quietly(self) -> None:
        """Wait for queued writes after a failure; their own errors matter less."""
        for pending in self._pending:
            try:
                pending.result()
            except Exception:
                log.debug("a queued write failed while aborting", exc_info=True)
        self._pending.clear()
