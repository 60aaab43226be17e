"""Running the simulator: in a background thread (tests, the demo), in the foreground (the
CLI), or in a subprocess (benchmarks, so that client and server do not share a core).

    with SimulatorServer(SimConfig(now=...), ak="AK", sk="SK") as sim:
        sim.url, sim.dataset, sim.faults, sim.stats, sim.set_now(...)

uvicorn serves with uvloop and httptools on a socket bound before it starts (port 0 picks a
free port, known at once). uvicorn's logging configuration is left alone (``log_config`` is
None), and its complaint about the responses we cut on purpose is filtered out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO

import uvicorn

from coc_simulator.app import DEFAULT_CACHE_BYTES, Clock, SimulatorApp
from coc_simulator.data import Dataset
from coc_simulator.faults import Faults
from coc_simulator.model import SimConfig
from coc_simulator.stats import Stats

READY_LINE = "COC simulator listening on {url}"
_READY = re.compile(r"COC simulator listening on (http://\S+)")
_UNSET = object()
_ROOT = Path(__file__).resolve().parents[1]


class _DroppedResponses(logging.Filter):
    """Hide uvicorn's error line for the connections the drop fault cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def _quiet_uvicorn() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DroppedResponses) for f in logger.filters):
        logger.addFilter(_DroppedResponses())


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: SimulatorApp, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_config=None,
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=2,
        backlog=1024,
    )


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _ThreadedServer(uvicorn.Server):
    """uvicorn whose main loop wakes up at once when asked to stop (not at its next
    0.1 s tick), which keeps test teardown short."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        await super().startup(sockets)

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000  # on_tick refreshes the Date header every 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 1.0)

    def stop_soon(self) -> None:
        self.should_exit = True
        with contextlib.suppress(AttributeError, RuntimeError):
            self._loop.call_soon_threadsafe(self._wakeup.set)


class SimulatorServer:
    """The simulator on loopback in a background thread with its own event loop."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        dataset: Dataset | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ak: str | None = None,
        sk: str | None = None,
        credentials: Mapping[str, str] | None = None,
        token: str | None = None,
        faults: Faults | None = None,
        now: datetime | int | object | None = _UNSET,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        log_level: str = "warning",
    ) -> None:
        if (ak is None) != (sk is None):
            raise ValueError("ak and sk go together")
        self.dataset = dataset if dataset is not None else Dataset(config)
        creds = dict(credentials or {})
        if ak is not None and sk is not None:
            creds[ak] = sk
        fixed = self.dataset.config.now if now is _UNSET else now
        self.clock = Clock(fixed)  # type: ignore[arg-type]
        self.faults = faults if faults is not None else Faults()
        self.stats = Stats()
        self.app = SimulatorApp(
            self.dataset,
            faults=self.faults,
            stats=self.stats,
            clock=self.clock,
            credentials=creds,
            token=token,
            cache_bytes=cache_bytes,
        )
        self._host, self._port, self._log_level = host, port, log_level
        self._server: _ThreadedServer | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.url = ""

    def __repr__(self) -> str:
        return f"SimulatorServer(url={self.url!r}, {self.app!r})"

    @property
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def set_now(self, value: datetime | int | None) -> None:
        """Move the simulated clock (None: follow the real time)."""
        self.clock.set(value)

    def warm(self, start_ms: int, end_ms: int) -> int:
        """Pre-render what a walk of [start_ms, end_ms) will ask for (see ``SimulatorApp.warm``)."""
        return self.app.warm(start_ms, end_ms)

    def start(self) -> SimulatorServer:
        _quiet_uvicorn()
        sock = bind(self._host, self._port)
        self.url = _url(sock)
        server = _ThreadedServer(_uvicorn_config(self.app, self._log_level))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="coc-simulator", daemon=True
        )
        self._server, self._thread, self._sock = server, thread, sock
        thread.start()
        while not server.started:
            thread.join(0.01)
            if not thread.is_alive():
                self._close()
                raise RuntimeError("the simulator failed to start")
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stop_soon()
        thread.join(10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        self._close()

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._on_ready()


def serve_forever(
    app: SimulatorApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM; ``on_ready(url)`` once listening."""
    _quiet_uvicorn()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sock = bind(host, port)
    url = _url(sock)
    server = _AnnouncingServer(
        _uvicorn_config(app, log_level), lambda: on_ready(url) if on_ready else None
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
    # handlers it found: make those a clean exit rather than a traceback or a kill.
    previous = {sig: signal.signal(sig, _exit_cleanly) for sig in _EXIT_SIGNALS}
    try:
        server.run(sockets=[sock])
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def start_subprocess(
    args: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    env: Mapping[str, str] | None = None,
    stderr: int | IO[str] | None = None,
    timeout: float = 120.0,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m coc_simulator --host H --port P *args``; wait for its ready
    line and return (process, url). ``stderr`` as for ``Popen`` (default: inherited).
    Stop it with ``stop_subprocess``."""
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_ROOT), environment.get("PYTHONPATH", "")) if p
    )
    command = [sys.executable, "-m", "coc_simulator", "--host", host, "--port", str(port)]
    process = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=environment,
        cwd=_ROOT,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, name="coc-simulator-stdout", daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=timeout)
            if line is None:
                raise RuntimeError(
                    f"the simulator exited with {process.wait()} before it was ready"
                )
            if match := _READY.search(line):
                return process, match.group(1)
    except BaseException:
        stop_subprocess(process)
        raise


def stop_subprocess(process: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
