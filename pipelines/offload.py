"""Decoding, flattening and Parquet writing in a child process, beside the fetching one.

On a 2-core machine the ingesting process spends its core on HTTP; decoding and flattening
the pages (about as much work again) would otherwise queue behind it. With a
``FlattenWorker`` the fetching process decodes only the ids and totals it needs for paging
and ships each page body, as received, to the worker, which decodes and validates it fully,
flattens it and streams it into the day's ``DayWriter``. ``bench/`` measures both ways.

Protocol (one worker per run, days one after another), parent to child over a pipe:
``("begin", day, root)``, then ``("page", uuid, batch, marker, body, keep)`` and
``("table", name, record_batch)`` messages, then ``("commit",)`` or ``("abort",)``, and
``("stop",)`` at the end. The child answers ``("committed", stats)``, ``("aborted",)`` or,
at any time, ``("error", kind, message, where)``: a page that does not decode (kind
``response``, naming ticket, batch and marker) or a failed write (kind ``write``). After an
error the child drops the day's pages until the parent aborts it. The pipe is widened to a few
megabytes so that the event loop rarely waits on it; a receiver thread surfaces errors as
soon as they come.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import pyarrow as pa

from pipelines.coc import errors
from pipelines.coc.models import BatchPage, RawPage, envelope_type
from pipelines.load import FLUSH_ROWS, InstanceLoader
from pipelines.parquet import DayWriter, TableStats, WriteError

log = logging.getLogger(__name__)

_REPLY_TIMEOUT_S = 3600.0
#: messages (pages, ~30 KB each) the worker holds read ahead of its flattening
_BUFFERED_MESSAGES = 128


class FlattenWorker:
    """The parent's handle on the child process. Not thread-safe: one ingesting loop."""

    def __init__(self, *, flush_rows: int = FLUSH_ROWS) -> None:
        ctx = multiprocessing.get_context("spawn")
        to_child_r, self._to_child = ctx.Pipe(duplex=False)
        self._from_child, from_child_w = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_serve,
            args=(to_child_r, from_child_w, flush_rows),
            name="coc-flatten",
            daemon=True,
        )
        self._process.start()
        to_child_r.close()
        from_child_w.close()
        _widen_pipe(self._to_child)
        self._replies: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._failure: BaseException | None = None
        self._day: date | None = None
        self._receiver = threading.Thread(
            target=self._receive_loop, name="coc-flatten-recv", daemon=True
        )
        self._receiver.start()

    # -- what the ingesting code calls ---------------------------------------------------

    def begin(self, day: date, root: str) -> None:
        self._day = day
        self._failure = None
        self._put(("begin", day, root))

    def page(self, execute_uuid: str, batch_index: int, page: RawPage) -> None:
        self.raise_failure()
        self._put(("page", execute_uuid, batch_index, page.marker, page.body, page.keep))

    def table(self, name: str, batch: pa.RecordBatch) -> None:
        self.raise_failure()
        self._put(("table", name, batch))

    def commit(self) -> dict[str, TableStats]:
        """Blocking: flush, publish the day, return what was written."""
        self.raise_failure()
        self._put(("commit",))
        reply = self._reply()
        if reply[0] != "committed":
            raise RuntimeError(f"flatten worker answered {reply[0]!r} to commit")
        return {name: TableStats(**values) for name, values in reply[1].items()}

    def abort(self) -> None:
        """Blocking: drop the day's staged files (the published day stays as it was)."""
        if not self._process.is_alive():
            return
        self._put(("abort",))
        try:  # earlier answers (an error the day already raised) are passed over
            while self._replies.get(timeout=60.0)[0] not in ("aborted", "died"):
                pass
        except queue.Empty:
            log.warning("the flatten worker did not confirm the abort")

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._to_child.send(("stop",))
            self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._to_child.close()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure.with_traceback(None)

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Blocking: True once the child has started and imported what it needs."""
        try:
            return self._replies.get(timeout=timeout)[0] == "ready"
        except queue.Empty:
            return False

    # -- threads ------------------------------------------------------------------------

    def _put(self, message: tuple[Any, ...]) -> None:
        """Write one message to the pipe. The pipe holds about a megabyte; when the worker
        is that far behind, this waits for it (back-pressure), as it should."""
        try:
            self._to_child.send(message)
        except (OSError, ValueError):
            self._died()
            self.raise_failure()

    def _receive_loop(self) -> None:
        while True:
            try:
                reply = self._from_child.recv()
            except (EOFError, OSError):
                self._died()
                self._replies.put(("died",))
                return
            if reply[0] == "error":
                self._failure = _rebuild(reply, self._day)
            self._replies.put(reply)

    def _reply(self, timeout: float = _REPLY_TIMEOUT_S) -> tuple[Any, ...]:
        reply = self._replies.get(timeout=timeout)
        if reply[0] in ("error", "died"):
            self.raise_failure()
        return reply

    def _died(self) -> None:
        if self._failure is None:
            self._failure = WriteError(
                f"the flatten worker process ended unexpectedly (exit code "
                f"{self._process.exitcode}); the published day is unchanged",
                day=self._day or date.min,
            )


def _rebuild(reply: tuple[Any, ...], day: date | None) -> BaseException:
    _, kind, message, where = reply
    if kind == "response":
        return errors.ResponseError(message, **where)
    return WriteError(message, day=day or date.min, **where)


# -- the child process -------------------------------------------------------------------


def _messages(inbox: Connection) -> Iterator[tuple[Any, ...]]:
    """The parent's messages, drained from the pipe by a thread as fast as they come.

    While this process encodes a row group it does not read; without the thread the pipe
    would fill and the parent's event loop would stall on it, fetching nothing meanwhile.
    """
    buffered: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=_BUFFERED_MESSAGES)

    def drain() -> None:
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):
                buffered.put(None)
                return
            buffered.put(message)
            if message[0] == "stop":
                return

    threading.Thread(target=drain, name="coc-flatten-inbox", daemon=True).start()
    while (message := buffered.get()) is not None:
        yield message


def _widen_pipe(conn: Connection, size: int = 4 << 20) -> None:
    """Give the pipe a buffer of several pages (Linux ``F_SETPIPE_SZ``); best effort."""
    try:
        import fcntl
    except ImportError:
        return
    for attempt in (size, 1 << 20):
        try:
            fcntl.fcntl(conn.fileno(), 1031, attempt)  # F_SETPIPE_SZ
            return
        except OSError:
            continue


def _serve(inbox: Connection, outbox: Connection, flush_rows: int) -> None:
    decoder = msgspec.json.Decoder(envelope_type(BatchPage))
    outbox.send(("ready",))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet")
    writer: DayWriter | None = None
    loader: InstanceLoader | None = None
    failure: tuple[Any, ...] | None = None  # the error reply that ended the day, if any
    for message in _messages(inbox):
        kind = message[0]
        try:
            if kind == "page":
                if failure is not None or loader is None:
                    continue
                _, uuid, batch, marker, body, keep = message
                try:
                    instances = decoder.decode(body).data.execute_instances or []
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    where = {"ticket": uuid, "batch": batch, "marker": marker}
                    text = f"get_batch: the response is not the documented JSON: {exc}"
                    failure = ("error", "response", text, where)
                    outbox.send(failure)
                    continue
                if keep is not None:
                    instances = [instances[i] for i in keep]
                loader.add(uuid, batch, instances)
            elif kind == "table":
                if failure is None and loader is not None:
                    loader.add_table(message[1], message[2])
            elif kind == "begin":
                _, day, root = message
                failure = None
                writer = DayWriter(root=root, day=day, row_group_rows=flush_rows)
                writer.__enter__()
                loader = InstanceLoader(writer, pool, flush_rows)
            elif kind == "commit":
                if failure is not None:  # the parent asked before it saw the error: refuse
                    outbox.send(failure)
                    continue
                assert writer is not None and loader is not None
                loader.finish()
                stats = writer.commit()
                outbox.send(("committed", {n: vars(s) for n, s in stats.items()}))
                writer = loader = None
            elif kind == "abort":
                if loader is not None:
                    loader.drain_quietly()
                if writer is not None:
                    writer.abort()
                writer = loader = None
                outbox.send(("aborted",))
            elif kind == "stop":
                break
        except Exception as exc:  # a write failed: report it, keep serving the abort
            failure = ("error", "write", f"{type(exc).__name__}: {exc}", {})
            outbox.send(failure)
    if writer is not None:
        writer.abort()
    pool.shutdown(wait=True)
