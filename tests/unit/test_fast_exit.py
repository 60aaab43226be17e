"""``skip_teardown_at_exit``: at exit, objects still alive are left to the operating system,
and everything an exit must do still happens."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import atexit, sys
    atexit.register(lambda: print("earlier exit handler ran", flush=True))
    {register}

    class Node:
        def __del__(self):
            print("freed at exit", flush=True)

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: only the final collection frees it
    sys.stdout.write("unflushed output")
    """
)


def _exit_of(register: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(register=register)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_objects_alive_at_exit_are_not_freed_one_by_one() -> None:
    plain = _exit_of("")
    assert "freed at exit" in plain  # what Python does by default: the cost skipped
    fast = _exit_of(
        "from pipelines.fast_exit import skip_teardown_at_exit\n"
        "skip_teardown_at_exit()\nskip_teardown_at_exit()"
    )
    assert "freed at exit" not in fast
    # the other exit handlers still run, and buffered output is still written
    assert "earlier exit handler ran" in fast and "unflushed output" in fast
