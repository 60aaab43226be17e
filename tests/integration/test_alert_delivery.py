"""Alert delivery to real receivers on loopback: each webhook flavour and SMTP get each
episode's opening and closing once, in their format, whatever the re-runs, backfills and
concurrent runs; failures are retried, a receiver that is down never fails the run, and no
secret (webhook URL, SMTP password) appears in any output.

Real parts: hand-built Parquet (``tests/unit/test_alert_episodes.py``), the real build, the
real ``coc-etl warehouse`` command in subprocesses, an HTTP server and an aiosmtpd server in
threads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_run_status_sensor_context, materialize

from assets.alerts import SENSOR_NAME, AlertsResource, deliver_alerts_sensor
from assets.resources import WarehouseResource
from tests.support.alert_receivers import (
    MailRecorder,
    WebhookRecorder,
    smtp_receiver,
    webhook_receiver,
)
from tests.support.failure_cells import SHIFT, ZONE, persistent, write_cells
from warehouse import build_warehouse, connect
from warehouse.alerts.channels import channels_from_text
from warehouse.alerts.deliver import AlertSettings, deliver_alerts, deliver_quietly
from warehouse.alerts.send import RetryPolicy

BIN = Path(sys.executable).parent
FLAVOURS = ("webhook", "slack", "feishu", "wecom", "dingtalk")
TOKEN = "tok-5ecret-4a1b"
PASSWORD = "smtp-pa55-secret"
FAST = RetryPolicy(attempts=3, backoff_s=0.01, timeout_s=5)


def channels_json(hooks: WebhookRecorder, mail: MailRecorder | None) -> str:
    channels: list[dict] = [
        {"type": f, "name": f, "url": f"{hooks.url}/{f}/{TOKEN}"} for f in FLAVOURS
    ]
    if mail is not None:
        channels.append(
            {
                "type": "email",
                "name": "oncall-mail",
                "host": "127.0.0.1",
                "port": mail.port,
                "security": "none",
                "sender": "coc@example.com",
                "to": ["oncall@example.com"],
                "username": "coc",
                "password": PASSWORD,
            }
        )
    return json.dumps(channels)


def open_episodes(path: Path) -> list[tuple[str, str, object]]:
    con = connect(path)
    try:
        return con.execute(
            "SELECT dimension, key, opened FROM alert_episodes WHERE closed IS NULL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def generic_events(hooks: WebhookRecorder) -> list[tuple[str, str, str, str]]:
    """(event, dimension, key, opened) of every notice the generic webhook received."""
    return [
        (b["event"], b["dimension"], b["key"], b["opened"])
        for b in hooks.bodies(f"/webhook/{TOKEN}")
    ]


def coc_etl_warehouse(root: Path, channels: str, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_"))}
    env |= {"COC_WAREHOUSE": str(root), "COC_ALERT_CHANNELS": channels, **extra}
    return subprocess.Popen(
        [str(BIN / "coc-etl"), "warehouse"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    return out + err


@pytest.mark.slow
def test_every_channel_gets_each_opening_and_closing_once_across_reruns_and_concurrent_runs(
    tmp_path: Path,
) -> None:
    root = tmp_path / "wh"
    write_cells(root, persistent(SHIFT, days=12))  # ZONE fails 10% from day 8, still open
    with webhook_receiver() as hooks, smtp_receiver(username="coc", password=PASSWORD) as mail:
        channels = channels_json(hooks, mail)
        link = {"COC_DASHBOARD_URL": "http://127.0.0.1:8501"}
        # two runs at once, then a re-run
        runs = [coc_etl_warehouse(root, channels, **link) for _ in range(2)]
        outputs = [finished(p) for p in runs]
        outputs.append(finished(coc_etl_warehouse(root, channels, **link)))
        opened = open_episodes(root / "coc.duckdb")
        assert ("zone", ZONE) in [(d, k) for d, k, _ in opened]
        events = generic_events(hooks)
        assert sorted(e for e in events if e[0] == "opened") == [
            ("opened", d, k, o.isoformat()) for d, k, o in opened
        ]
        assert len(events) == len(set(events))  # each once
        for flavour in FLAVOURS:
            assert len(hooks.bodies(f"/{flavour}/{TOKEN}")) == len(events), flavour
        assert len(mail.messages) == len(events)
        assert mail.logins  # the password was checked by the server

        # the formats, on the zone's opening
        def zone_body(flavour: str) -> dict:
            bodies = hooks.bodies(f"/{flavour}/{TOKEN}")
            return next(b for b in bodies if ZONE in json.dumps(b) and "zone" in json.dumps(b))

        generic = next(
            b
            for b in hooks.bodies(f"/webhook/{TOKEN}")
            if (b["dimension"], b["key"]) == ("zone", ZONE)
        )
        assert generic["event"] == "opened"
        assert generic["opened"] == "2026-11-09" and generic["closed"] is None
        assert generic["failure_rate"] == 0.1 and generic["baseline_rate"] == 0.01
        assert (generic["instances"], generic["failed"]) == (4000, 400)  # days 8-11
        assert generic["link"] == f"http://127.0.0.1:8501/?dimension=zone&key={ZONE}"
        assert set(zone_body("slack")) == {"text"}
        feishu = zone_body("feishu")
        assert feishu["msg_type"] == "text" and set(feishu["content"]) == {"text"}
        wecom = zone_body("wecom")
        assert wecom["msgtype"] == "markdown" and set(wecom["markdown"]) == {"content"}
        ding = zone_body("dingtalk")
        assert ding["msgtype"] == "markdown" and set(ding["markdown"]) == {"title", "text"}
        for text in (
            zone_body("slack")["text"],
            feishu["content"]["text"],
            wecom["markdown"]["content"],
            ding["markdown"]["text"],
        ):
            for part in (ZONE, "10.0%", "1.0%", "since: 2026-11-09", "4,000", "400", "?dimension="):
                assert part in text, (part, text)
        mailed = [m for m in mail.messages if ZONE in m["Subject"]]
        assert mailed and "since: 2026-11-09" in mailed[0].get_payload()

        # the zone recovers on day 15: each channel gets its closing once, over two runs
        write_cells(root, [c for c in persistent(SHIFT, days=18) if c.day >= 12])
        outputs.append(finished(coc_etl_warehouse(root, channels, **link)))
        outputs.append(finished(coc_etl_warehouse(root, channels, **link)))
        after = generic_events(hooks)
        assert len(after) == len(set(after))  # still each once
        closing = [e for e in after if e[:3] == ("closed", "zone", ZONE)]
        assert closing == [("closed", "zone", ZONE, "2026-11-09")]
        closed_day = next(
            b["closed"]
            for b in hooks.bodies(f"/webhook/{TOKEN}")
            if b["event"] == "closed" and b["key"] == ZONE
        )
        assert closed_day == "2026-11-16"
        for flavour in FLAVOURS:
            assert len(hooks.bodies(f"/{flavour}/{TOKEN}")) == len(after), flavour
        assert len(mail.messages) == len(after)
    for output in outputs:
        assert TOKEN not in output and PASSWORD not in output and hooks.url not in output
    assert any("alert notices sent" in output for output in outputs)


def test_a_receiver_that_fails_twice_then_accepts_gets_the_message_once(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    write_cells(root, persistent(SHIFT, days=12))
    built = build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
    with webhook_receiver() as hooks:
        path = f"/slack/{TOKEN}"
        hooks.fail_first[path] = 2  # the first two requests answer 500
        channels = channels_from_text(
            json.dumps([{"type": "slack", "name": "s", "url": hooks.url + path}])
        )
        report = deliver_alerts(
            duckdb_path=built.duckdb_path,
            warehouse=str(root),
            settings=AlertSettings(channels=channels, retry=FAST),
            sleep=lambda s: None,
        )
        assert not report.failed
        assert len(hooks.bodies(path)) == len(report.sent) >= 2  # the zone's and its region's
        assert len({json.dumps(b) for b in hooks.bodies(path)}) == len(report.sent)  # once each
        assert hooks.attempts[path] == len(report.sent) + 2


def test_a_receiver_that_is_down_never_fails_the_run_and_gets_it_next_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "wh"
    write_cells(root, persistent(SHIFT, days=12))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = json.dumps(
        [{"type": "wecom", "name": "team", "url": f"http://127.0.0.1:{closed_port}/{TOKEN}"}]
    )
    output = finished(coc_etl_warehouse(root, down))
    assert "1 failed (alert channel team (wecom): ConnectError after 3 attempts)" in output
    assert "left for the next run" in output
    assert TOKEN not in output and str(closed_port) not in output
    with caplog.at_level(logging.INFO):
        report = deliver_quietly(
            duckdb_path=str(root / "coc.duckdb"),
            warehouse=str(root),
            settings=AlertSettings(channels=channels_from_text(down), retry=FAST),
            sleep=lambda s: None,
        )
    assert report.failed and not report.sent
    assert TOKEN not in caplog.text and report.summary() in caplog.text
    with webhook_receiver() as hooks:  # the same channel, back up
        up = json.dumps([{"type": "wecom", "name": "team", "url": f"{hooks.url}/wecom/{TOKEN}"}])
        output = finished(coc_etl_warehouse(root, up))
        received = len(hooks.bodies(f"/wecom/{TOKEN}"))
        assert received >= len(open_episodes(root / "coc.duckdb")) > 0
        assert f"alerts: {received} alert notices sent" in output
        assert TOKEN not in output


def test_a_backfill_of_old_days_never_pages_for_episodes_closed_long_ago(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    # the zone's episode of days 8-14 closed on day 15; the data runs to day 29
    write_cells(root, persistent(SHIFT, days=30))
    built = build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
    con = connect(built.duckdb_path)
    try:
        episodes = con.execute("SELECT count(*) FROM alert_episodes").fetchall()[0][0]
    finally:
        con.close()
    assert episodes >= 1
    with webhook_receiver() as hooks:
        channels = channels_from_text(
            json.dumps([{"type": "webhook", "name": "w", "url": f"{hooks.url}/webhook/{TOKEN}"}])
        )
        report = deliver_alerts(
            duckdb_path=built.duckdb_path,
            warehouse=str(root),
            settings=AlertSettings(channels=channels, retry=FAST),
        )
        assert report.sent == [] and hooks.bodies(f"/webhook/{TOKEN}") == []


def test_the_dagster_sensor_delivers_after_a_successful_run(tmp_path: Path) -> None:
    from dagster import asset

    root = tmp_path / "wh"
    write_cells(root, persistent(SHIFT, days=12))
    build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))

    @asset
    def done() -> int:
        return 1

    instance = DagsterInstance.ephemeral()
    result = materialize([done], instance=instance)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    with webhook_receiver() as hooks:
        url = f"{hooks.url}/dingtalk/{TOKEN}"
        alerts = AlertsResource(channels=json.dumps([{"type": "dingtalk", "url": url}]))
        warehouse = WarehouseResource(warehouse=str(root))
        context = build_run_status_sensor_context(
            sensor_name=SENSOR_NAME,
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"warehouse": warehouse, "alerts": alerts},
        )
        skipped = deliver_alerts_sensor(context)
        received = len(hooks.bodies(f"/dingtalk/{TOKEN}"))
        assert received >= len(open_episodes(root / "coc.duckdb")) > 0
        assert f"{received} alert notices sent" in str(skipped.skip_message)
        assert TOKEN not in str(skipped.skip_message)
        deliver_alerts_sensor(context)  # a second run: nothing new
        assert len(hooks.bodies(f"/dingtalk/{TOKEN}")) == received


def test_a_bad_channel_configuration_names_the_channel_never_its_url() -> None:
    from pipelines.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        channels_from_text(json.dumps([{"type": "slack", "url": f"http://hooks.example/{TOKEN}"}]))
    assert "channel 1 (slack-1)" in str(caught.value) and TOKEN not in str(caught.value)
    with pytest.raises(ConfigError, match="'type' must be one of"):
        channels_from_text('[{"type": "pager"}]')
    assert repr(channels_from_text(json.dumps([{"type": "slack", "url": "https://h/" + TOKEN}])))
    assert TOKEN not in repr(
        channels_from_text(json.dumps([{"type": "slack", "url": "https://h/" + TOKEN}]))
    )


@pytest.mark.slow
def test_two_machines_with_their_own_duckdb_file_share_the_records_through_redis(
    tmp_path: Path,
) -> None:
    """Each machine builds its own coc.duckdb of one warehouse; with COC_REDIS_URL both see
    one set of records and take one lock, so two deliveries at once send each notice once."""
    from concurrent.futures import ThreadPoolExecutor

    from bench.shared_rate import redis_server
    from tests.support.setup_lock import ensure_cluster_services

    ensure_cluster_services()
    root = tmp_path / "wh"
    write_cells(root, persistent(SHIFT, days=12))
    files = []
    for machine in ("a", "b"):
        built = build_warehouse(
            warehouse=str(root), duckdb_path=str(tmp_path / machine / "c.duckdb")
        )
        files.append(built.duckdb_path)
    (tmp_path / "redis").mkdir()
    with redis_server(tmp_path / "redis") as redis_url, webhook_receiver() as hooks:
        channels = channels_from_text(
            json.dumps([{"type": "feishu", "name": "f", "url": f"{hooks.url}/feishu/{TOKEN}"}])
        )
        settings = AlertSettings(channels=channels, retry=FAST)

        def deliver(path: str) -> int:
            report = deliver_alerts(
                duckdb_path=path, warehouse=str(root), settings=settings, redis_url=redis_url
            )
            return len(report.sent)

        with ThreadPoolExecutor(2) as pool:
            sent = list(pool.map(deliver, files))
        bodies = hooks.bodies(f"/feishu/{TOKEN}")
        assert sum(sent) == len(bodies) >= 2
        assert len({json.dumps(b) for b in bodies}) == len(bodies)
        assert deliver(files[0]) == deliver(files[1]) == 0
