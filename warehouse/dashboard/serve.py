"""Start the dashboard: check the file and the port, then run Streamlit in this process.

The checks come first so that a bad start is one clear line and a non-zero exit (raised as
``DashboardError``), never a server that answers with an error page: the file must open
read-only as a built warehouse, and the address must be free. Streamlit runs headless, with
no file watcher and no usage statistics, and the page gets the file's path as its argument.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from pathlib import Path

from pipelines.settings import ObjectStoreSettings
from warehouse.dashboard.queries import DashboardError, open_warehouse

APP = Path(__file__).with_name("app.py")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501


def check_address(host: str, port: int) -> None:
    """Fail clearly when ``host:port`` cannot be bound (in use, or not an address here)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DashboardError(f"--host {host!r} is not an address of this machine: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DashboardError(
                    f"port {port} on {host} is already in use: stop what listens there "
                    "or pick another with --port"
                ) from None
            raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(
    *,
    duckdb_path: str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    announce: Callable[[str], None] = print,
    object_store: ObjectStoreSettings | None = None,
) -> None:
    """Serve the dashboard over ``duckdb_path`` until interrupted.

    With ``object_store`` (an ``s3://`` warehouse), the page's connections read the views'
    objects through our S3 client; the page takes the same ``AWS_*`` variables from this
    process's environment (``--object-store``), so no secret passes through arguments.
    """
    path = Path(duckdb_path).expanduser().resolve()
    open_warehouse(path, object_store=object_store).close()
    check_address(host, port)

    from streamlit.web import bootstrap

    flags: dict[str, object] = {
        "server_address": host,
        "server_port": port,
        "server_headless": True,
        "server_fileWatcherType": "none",
        "server_runOnSave": False,
        "browser_gatherUsageStats": False,
        "global_developmentMode": False,
        "client_toolbarMode": "viewer",
    }
    announce(f"dashboard over {path} (read-only) at http://{host}:{port}  (Ctrl-C stops it)")
    bootstrap.load_config_options(flags)
    args = ["--duckdb", str(path), *(["--object-store"] if object_store else [])]
    bootstrap.run(str(APP), False, args, flags)
