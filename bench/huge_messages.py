"""Peak memory of loading pages that carry 40 MB messages: ``python -m bench.huge_messages``.

The loader (``pipelines.lake.load.InstanceLoader``) and the writer
(``pipelines.lake.day_writer.DayWriter``) gather rows by count (10,000 a chunk, 10,000 a row group).
Rows of 40 MB messages never reach the count, so both used to hold every page of the day until the
end. They now also flush by bytes (``FLUSH_BYTES``, ``ROW_GROUP_BYTES``). This bench loads the same
synthetic pages twice, each in a fresh child process: once with the byte bounds off (the old
behaviour, the baseline of the same run) and once with the defaults, and reports each child's peak
RSS (``VmHWM``) and the ratio. The pages are the real path's input: raw response bodies
(``RawPage``) flattened by Arrow on the loader's thread and written as Parquet under a temporary
warehouse, then published.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bench.core import RESULTS_DIR, peak_rss_bytes, rss_bytes

MESSAGE_BYTES = 40 * 2**20
PAGES = 24
INSTANCES_PER_PAGE = 5  # one of them carries the 40 MB message
UNBOUNDED = 2**62


def _body(page: int, message: bytes) -> bytes:
    """One batch page as the API sends it: ``INSTANCES_PER_PAGE`` instances, the first with
    the large message."""
    items = []
    for k in range(INSTANCES_PER_PAGE):
        instance_id = page * INSTANCES_PER_PAGE + k + 1
        text = message if k == 0 else b"ok"
        items.append(
            b'{"id":%d,"target_instance":{"resource_id":"r%d","agent_sn":null,'
            b'"agent_status":"ONLINE","region_id":null,"project_id":null,"properties":'
            b'{"host_name":"h%d","fixed_ip":"10.0.0.1","floating_ip":null,"region_id":"r1",'
            b'"zone_id":"z1","application":null,"group":null,"project_id":null}},'
            b'"gmt_created":1795392000000,"gmt_finished":1795392001000,"execute_costs":1000,'
            b'"status":"ABNORMAL","message":"%s"}' % (instance_id, k, k, text)
        )
    return b'{"data":{"batch_index":1,"total_instances":%d,"execute_instances":[%s]}}' % (
        PAGES * INSTANCES_PER_PAGE,
        b",".join(items),
    )


def child(bounded: bool, warehouse: str) -> dict[str, int | float]:
    """Load the pages into a day of ``warehouse``; the process's floor and peak RSS."""
    from concurrent.futures import ThreadPoolExecutor

    from pipelines.coc.models import RawPage
    from pipelines.lake.day_writer import ROW_GROUP_BYTES, DayWriter
    from pipelines.lake.load import FLUSH_BYTES, FLUSH_ROWS, InstanceLoader

    floor = rss_bytes()
    started = time.perf_counter()
    message = b"x" * MESSAGE_BYTES
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        DayWriter(
            root=warehouse,
            day=date(2026, 11, 25),
            row_group_rows=FLUSH_ROWS,
            row_group_bytes=ROW_GROUP_BYTES if bounded else UNBOUNDED,
        ) as writer,
    ):
        loader = InstanceLoader(
            writer, pool, FLUSH_ROWS, flush_bytes=FLUSH_BYTES if bounded else UNBOUNDED
        )
        for page in range(PAGES):
            body = _body(page, message)  # a fresh body per page, as from the network
            raw = RawPage(body=body, marker=page, keep=None, count=INSTANCES_PER_PAGE)
            loader.add("SCT-huge-messages", 1, raw)
            del body, raw
        loader.finish()
        stats = writer.commit()
    rows = stats["execution_instances"].rows
    assert rows == PAGES * INSTANCES_PER_PAGE, rows
    return {
        "floor": floor,
        "peak": peak_rss_bytes(),
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }


def _run_child(bounded: bool) -> dict[str, int | float]:
    with tempfile.TemporaryDirectory(prefix="huge-messages-") as warehouse:
        done = subprocess.run(
            [sys.executable, "-m", "bench.huge_messages", "--child", str(bounded), warehouse],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.huge_messages")
    parser.add_argument("--child", nargs=2, metavar=("BOUNDED", "WAREHOUSE"))
    parser.add_argument("--out", default=str(RESULTS_DIR / "huge_messages.json"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0] == "True", args.child[1])))
        return 0
    mib = 2**20
    before = _run_child(bounded=False)
    after = _run_child(bounded=True)
    data = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pages": PAGES,
        "instances_per_page": INSTANCES_PER_PAGE,
        "message_mib": MESSAGE_BYTES / mib,
        "data_mib": PAGES * MESSAGE_BYTES / mib,
        "rows_only_peak_mib": round(before["peak"] / mib),
        "bytes_bounded_peak_mib": round(after["peak"] / mib),
        "floor_mib": round(after["floor"] / mib),
        "ratio_bounded_to_rows_only": round(after["peak"] / before["peak"], 3),
        "seconds": {"rows_only": before["seconds"], "bytes_bounded": after["seconds"]},
    }
    Path(args.out).write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
