"""Set-up that must not run twice at once, now that ``make test`` runs the suite on several
pytest-xdist workers: installing Debian packages, making a compatibility environment,
building a warehouse that the workers share.

``setup_lock(path)`` holds an exclusive ``flock`` on ``path`` for the block: the first
worker does the work, the others wait for it and then find it done. The kernel drops the
lock when its holder dies, so a killed run never leaves the next one waiting.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: apt-get and dpkg are one per machine, whichever checkout's tests call them
APT_LOCK = Path(tempfile.gettempdir()) / "coc-tests-apt.lock"


@contextmanager
def setup_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created when missing) until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_cluster_services() -> None:
    """``coc_etl.cluster.ensure_services`` (redis-server and postgresql from Debian when they
    are missing), one installer at a time."""
    from coc_etl.cluster import ensure_services

    with setup_lock(APT_LOCK):
        ensure_services()
