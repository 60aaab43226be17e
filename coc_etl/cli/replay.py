"""``coc-etl replay``: days derived again from their raw archive, then ``coc.duckdb`` rebuilt.

No request reaches the COC API (``COC_ENDPOINT`` and the credentials are not even read).
Every day's archive is checked before anything is written: a day without one exits 2 naming
it. Exit codes as for ``coc-etl ingest``.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import TYPE_CHECKING

from coc_etl.cli.ingest import rebuild, rebuild_quietly
from coc_etl.cli.outcome import EXIT_OK
from pipelines.variables import REPLAY, help_section, process_env

if TYPE_CHECKING:
    from pipelines.ingest import DayResult

HELP = (
    help_section(REPLAY)
    + """
exit codes:
  0 ok, 2 configuration or arguments, or a day without a raw archive (named),
  4 write failure (published days named), 130 interrupted, 143 terminated
"""
)


def run(args: argparse.Namespace) -> int:
    from pipelines.settings import check_day_range, warehouse_settings_from_env

    wh = warehouse_settings_from_env(process_env())
    last = args.to or args.day
    check_day_range(args.day, last, tz=wh.tz)

    from warehouse.preflight import check_before_run

    check_before_run(wh)
    days = [args.day + timedelta(days=i) for i in range((last - args.day).days + 1)]

    from pipelines.replay import check_archived, replay_days

    check_archived(wh, days)  # a day without an archive: exit 2 before anything is written
    published: list[date] = args.published

    def on_day(result: DayResult) -> None:
        published.append(result.day)
        drift = f", {len(result.drift)} schema drift finding(s)" if result.drift else ""
        print(
            f"{result.day}: replayed {result.responses} archived responses: "
            f"{result.walk.tickets} tickets, {result.walk.batches} batches, {result.rows} "
            f"instances{drift}, no request to the API, in {result.seconds:.1f}s",
            flush=True,
        )

    try:
        replay_days(wh, days, on_day=on_day, report=lambda m: print(m, flush=True))
    except BaseException:
        if published:
            args.rebuilt = rebuild_quietly(wh, published)
        raise
    rebuild(wh, published)
    return EXIT_OK
