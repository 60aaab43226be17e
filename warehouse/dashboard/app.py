"""The Streamlit page of ``coc-etl dashboard``: widgets and charts over ``queries``.

Streamlit runs this file on every refresh (any widget change, the Refresh button, a reload).
Each run opens ``coc.duckdb`` read-only, reads what it shows and closes it, so a rebuilt
file is seen at the next refresh. The arguments are ``--duckdb PATH`` and, for an
``s3://`` warehouse, ``--object-store`` (given by
``warehouse.dashboard.serve``); nothing here reads the environment, except the ``AWS_*``
variables when it is told the warehouse is on object storage (``--object-store``).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from typing import Any

import altair as alt
import duckdb
import pandas as pd
import streamlit as st

from pipelines.settings import object_store_settings_from_env
from pipelines.variables import process_env
from warehouse.dashboard import queries as q

#: ASCII punctuation: CommonMark shows each literally after a backslash, and so does every
#: extension ``st.table`` reads cells with ($ math, ~~ strike, :color[...], :emoji:)
_MARKUP = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def _as_sent(value: object) -> object:
    """A cell's text escaped so that ``st.table``'s Markdown shows it exactly as sent."""
    return _MARKUP.sub(r"\\\1", value) if isinstance(value, str) else value


def _table(frame: pd.DataFrame) -> None:
    """``st.table`` with every text cell shown as it is, never read as Markdown."""
    st.table(frame.map(_as_sent))


def _percent(rate: float | None) -> str:
    return "none" if rate is None or pd.isna(rate) else f"{rate:.2%}"


def _day(value: object) -> str:
    """A DATE column's value as the day it is (YYYY-MM-DD), whatever pandas made of it."""
    return "none" if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _filters(options: q.Options) -> q.Filters | None:
    default = options.default_filters()
    if default is None or options.first_day is None or options.last_day is None:
        return None
    with st.sidebar:
        st.header("Filters")
        picked = st.date_input(
            "Days (ticket creation)",
            value=(max(default.start, options.first_day), default.end),
            min_value=options.first_day,
            max_value=options.last_day,
            key="dates",
        )
        regions = st.multiselect("Region", options.regions, key="regions")
        applications = st.multiselect("Application", options.applications, key="applications")
        scripts = st.multiselect("Script", options.scripts, key="scripts")
        st.button("Refresh", key="refresh", help="read coc.duckdb again")
    days = [d for d in picked if isinstance(d, date)] if isinstance(picked, tuple) else [picked]
    start = days[0] if days else default.start
    end = days[-1] if days else default.end
    return q.Filters(
        start=start,
        end=end,
        regions=tuple(regions),
        applications=tuple(applications),
        scripts=tuple(scripts),
    )


def _alerts(frame: pd.DataFrame | None) -> None:
    st.subheader("Alerts")
    if frame is None:
        st.caption("Nothing computed yet: this warehouse has no failure_shifts mart.")
        return
    if frame.empty:
        st.caption("No alert on the newest day of failure_shifts.")
        return
    st.warning(f"{len(frame)} alert(s) on {_day(frame['dt'].iloc[0])}")
    shown = frame.assign(
        failure_rate=frame["failure_rate"].map(_percent),
        baseline_rate=frame["baseline_rate"].map(_percent),
        score=frame["score"].round(2),
        since=frame["since"].map(_day),  # a DATE comes back from pandas as a midnight timestamp
    )
    _table(shown[["dimension", "key", "failure_rate", "baseline_rate", "score", "since"]])


def _episode_label(r: Any) -> str:
    """One episode (a row of the episodes frame) as the picker shows it."""
    state = f"open {r.days} days" if pd.isna(r.closed) else f"closed {_day(r.closed)}"
    return f"{r.dimension} {r.key} · since {_day(r.opened)} · {state}"


def _episodes(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame | None) -> None:
    """Open episodes first, with how long each has been open; then the range's closed ones;
    then the failed instances of the episode picked (or the one a link names)."""
    st.subheader("Alerts")
    if frame is None:
        st.caption("Nothing computed yet: this warehouse has no alert_episodes mart.")
        return
    shown = frame.assign(
        since=frame["opened"].map(_day),
        closed=frame["closed"].map(_day),
        open_for=frame["days"].map(lambda d: f"{d} days"),
        failure_rate=frame["failure_rate"].map(_percent),
        baseline_rate=frame["baseline_rate"].map(_percent),
    )
    is_open = frame["closed"].isna()
    columns = ["dimension", "key", "since", "failure_rate", "baseline_rate", "failed", "instances"]
    if is_open.any():
        st.warning(f"{int(is_open.sum())} open alert episode(s)")
        st.markdown("**Open episodes**")
        st.table(shown[is_open][[*columns[:3], "open_for", *columns[3:]]])
    else:
        st.caption("No open alert episode.")
    if (~is_open).any():
        st.markdown("**Closed in this range**")
        st.table(shown[~is_open][[*columns[:3], "closed", *columns[3:]]])
    if frame.empty:
        return
    rows = list(frame.itertuples())
    linked = st.query_params.get("key"), st.query_params.get("dimension")
    first = next(
        (n for n, r in enumerate(rows) if (r.key, r.dimension) == linked),
        0,
    )
    index = st.selectbox(
        "Episode",
        range(len(rows)),
        index=first,
        format_func=lambda n: _episode_label(rows[n]),
        key="episode",
    )
    episode = rows[int(index or 0)]
    end = episode.closed if not pd.isna(episode.closed) else episode.last_alerted
    try:
        failed = q.episode_instances(
            con,
            str(episode.dimension),
            None if episode.key is None else str(episode.key),
            pd.Timestamp(episode.opened).date(),
            pd.Timestamp(end).date(),
        )
    except q.DashboardError as exc:
        st.error(str(exc))
        return
    st.markdown(f"**Failed instances of the episode** ({len(failed)})")
    if failed.empty:
        st.caption("no failed instance")
    else:
        st.table(failed.assign(dt=failed["dt"].map(_day)))


def _headline(h: q.Headline, f: q.Filters) -> None:
    compared = h.previous_instances > 0  # no change to show against a period without data
    st.caption(
        f"{f.start} to {f.end} ({f.days} days), against the {f.days} days before: "
        f"{h.previous_instances:,} instances, {h.previous_failed:,} failed"
    )
    change = h.rate_change
    a, b, c = st.columns(3)
    a.metric(
        "Instances",
        f"{h.instances:,}",
        delta=f"{h.instances - h.previous_instances:+,}" if compared else None,
    )
    b.metric(
        "Failed",
        f"{h.failed:,}",
        delta=f"{h.failed - h.previous_failed:+,}" if compared else None,
        delta_color="inverse",
    )
    c.metric(
        "Failure rate",
        _percent(h.failure_rate),
        delta=None if change is None else f"{change * 100:+.2f} points",
        delta_color="inverse",
    )


def _bars(frame: pd.DataFrame, title: str) -> None:
    st.markdown(f"**{title}**")
    if frame.empty:
        st.caption("no instances")
        return
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("failed:Q", title="failed instances"),
            y=alt.Y("key:N", sort="-x", title=None),
            color=alt.Color("failure_rate:Q", title="failure rate", scale=alt.Scale(scheme="reds")),
            tooltip=["key", "instances", "failed", alt.Tooltip("failure_rate:Q", format=".2%")],
        )
    )
    st.altair_chart(chart, use_container_width=True)


def _drill_down(con: duckdb.DuckDBPyConnection, tickets: pd.DataFrame) -> None:
    st.subheader("Ticket drill-down")
    if tickets.empty:
        st.caption("no ticket in this range")
        return
    labels = [
        f"{pd.Timestamp(r.dt).date()} · {r.execute_uuid} · {r.script_name} · "
        f"{r.failed} failed of {r.instances}"
        for r in tickets.itertuples()
    ]
    index = st.selectbox("Ticket", range(len(labels)), format_func=labels.__getitem__, key="ticket")
    ticket = tickets.iloc[int(index or 0)]
    day, uuid = ticket["dt"], str(ticket["execute_uuid"])
    day = day.date() if hasattr(day, "date") else day
    try:
        batches = q.ticket_batches(con, day, uuid)
        st.markdown(f"**Batches** ({len(batches)})")
        st.dataframe(batches, hide_index=True, height=min(300, 38 + 35 * len(batches)))
        choices: list[int | None] = [None, *(int(b) for b in batches["batch_index"])]
        batch = st.selectbox(
            "Batch",
            choices,
            format_func=lambda b: "all batches" if b is None else f"batch {b}",
            key="batch",
        )
        failed = q.failed_instances(con, day, uuid, batch)
    except q.DashboardError as exc:
        st.error(str(exc))
        return
    st.markdown(f"**Failed instances** ({len(failed)})")
    if failed.empty:
        st.caption("no failed instance")
    else:
        shown = ["batch_index", "instance_id", "host_name", "zone_id", "agent_status"]
        _table(failed.head(100)[[*shown, "finished_at", "message"]])


def _drift(frame: pd.DataFrame | None) -> None:
    """A small panel: the fields the API sent unlike its documentation, if any."""
    if frame is None or frame.empty:
        return
    st.subheader("Schema drift")
    st.warning(
        f"The API sent {len(frame)} field(s) unlike its documentation "
        "(kept in the raw archive; a new column is a schema change and `coc-etl replay`)"
    )
    _table(frame[["kind", "endpoint", "field_path", "expected", "days", "count"]])


def render(con: duckdb.DuckDBPyConnection, duckdb_path: str) -> None:
    options = q.options(con)
    f = _filters(options)
    if f is None:
        st.info(
            f"The warehouse at {duckdb_path} has no instances yet: materialize a day "
            f"({q.BUILD_COMMAND}), then refresh."
        )
        return
    data = q.refresh(con, f)
    if data.episodes is None:  # a file built before the episodes
        _alerts(data.alerts)
    else:
        _episodes(con, data.episodes)
    _drift(data.drift)
    st.subheader("Headline")
    _headline(data.headline, f)

    st.subheader("Failure rate over time by region")
    if data.rate_by_region.empty:
        st.caption("no instances")
    else:
        lines = (
            alt.Chart(data.rate_by_region)
            .mark_line(point=True)
            .encode(
                x=alt.X("yearmonthdate(dt):T", title="day", axis=alt.Axis(format="%b %d")),
                y=alt.Y("failure_rate:Q", title="failure rate", axis=alt.Axis(format="%")),
                color=alt.Color("region_id:N", title="region"),
                tooltip=["dt:T", "region_id", "instances", "failed"],
            )
        )
        st.altair_chart(lines, use_container_width=True)

    st.subheader("Ranked")
    zones, scripts, statuses = st.columns(3)
    with zones:
        _bars(data.zones, "Zones")
    with scripts:
        _bars(data.scripts, "Scripts")
    with statuses:
        _bars(data.agent_statuses, "Agent statuses")

    st.subheader("Top hosts")
    hosts = data.hosts.assign(failure_rate=data.hosts["failure_rate"].map(_percent))
    _table(
        hosts[
            [
                "host_name",
                "resource_id",
                "zone_id",
                "failed",
                "failure_rate",
                "last_failed_at",
                "example_message",
            ]
        ]
    )
    st.subheader("Top message patterns")
    _table(data.messages[["message_pattern", "failed", "last_seen", "example_message"]])

    _drill_down(con, data.tickets)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="warehouse.dashboard.app")
    parser.add_argument("--duckdb", required=True)
    parser.add_argument(
        "--object-store", action="store_true", help="read s3:// views with the AWS_* variables"
    )
    args = parser.parse_args(argv)
    object_store = None
    if args.object_store:  # the page's own entry point, like the CLI: the environment is read here
        object_store = object_store_settings_from_env(process_env())
    st.set_page_config(page_title="COC script orders", layout="wide")
    st.title("COC script orders: failures")
    st.caption(f"{args.duckdb}, read-only, read again at every refresh")
    try:
        con = q.open_warehouse(args.duckdb, object_store=object_store)
    except q.DashboardError as exc:
        st.error(str(exc))
        return
    try:
        render(con, args.duckdb)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        st.error(f"reading {args.duckdb} failed: {first}; refresh, or rebuild it")
    finally:
        con.close()


main(sys.argv[1:])
