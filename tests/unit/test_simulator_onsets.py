"""Planted onsets in the simulator: parsed from the command line, applied from their day
only, and leaving everything else as it was."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest

from coc_simulator import (
    Dataset,
    HostOnset,
    MessageOnset,
    SimConfig,
    VersionOnset,
    ZoneOnset,
)
from coc_simulator.cli import add_simulator_arguments, build_app
from coc_simulator.onsets import parse_onset

NOW = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
ONSET = date(2026, 11, 24)
#: long after every ticket has settled
LATER = datetime(2026, 12, 31, tzinfo=UTC)
SMALL = {"now": NOW, "days": 4, "hosts": 300, "tickets_per_day": (12, 16), "max_batch_size": 80}


def outcomes(dataset: Dataset) -> dict[tuple[str, int], list[tuple[str, int, str]]]:
    """(ticket, batch) -> [(status, host index, message)] for every instance, settled."""
    rid = {h.target["resource_id"]: n for n, h in enumerate(dataset.hosts)}
    return {
        (t.execute_uuid, b.index): [
            (i["status"], rid[i["target_instance"]["resource_id"]], i["message"] or "")
            for i in dataset.instances(t, b.index, now=LATER)
        ]
        for t in dataset.tickets
        for b in t.batches
    }


def created_day(dataset: Dataset) -> dict[str, date]:
    return {
        t.execute_uuid: datetime.fromtimestamp(t.gmt_created / 1000, UTC).date()
        for t in dataset.tickets
    }


@pytest.fixture(scope="module")
def plain() -> Dataset:
    return Dataset(SimConfig(**SMALL))


def test_parse_onset_reads_each_form() -> None:
    assert parse_onset("zone:cn-north-4b:2026-11-24:0.3") == ZoneOnset(
        zone="cn-north-4b", day=ONSET, failure=0.3
    )
    assert parse_onset("host:17:2026-11-24:0.9") == HostOnset(host=17, day=ONSET, failure=0.9)
    assert parse_onset("version:deploy_nginx@v1.3.0:2026-11-24:0.2") == VersionOnset(
        script="deploy_nginx", version="v1.3.0", day=ONSET, failure=0.2
    )
    assert parse_onset("message:2026-11-24:0.01") == MessageOnset(day=ONSET, failure=0.01)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("region:cn-north-4:2026-11-24:0.3", "expected one of"),
        ("zone:cn-north-4b:0.3", "expected one of"),
        ("zone:cn-north-4b:24/11/2026:0.3", "not a YYYY-MM-DD day"),
        ("zone:cn-north-4b:2026-11-24:lots", "is not a number"),
        ("zone:cn-north-4b:2026-11-24:1.5", "within 0..1"),
        ("host:web-1:2026-11-24:0.5", "index into the host pool"),
        ("version:deploy_nginx:2026-11-24:0.5", "SCRIPT@VERSION"),
        ("zone::2026-11-24:0.5", "the zone is missing"),
    ],
)
def test_parse_onset_names_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        parse_onset(spec)
    assert repr(spec) in str(caught.value)


def test_a_host_outside_the_pool_is_refused_by_the_cli() -> None:
    import argparse

    parser = add_simulator_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--hosts", "10", "--onset", "host:10:2026-11-24:0.5"])
    with pytest.raises(SystemExit, match="host must be an index below 10"):
        build_app(args)


def test_onsets_change_nothing_before_their_day(plain: Dataset) -> None:
    onsets = (
        ZoneOnset(zone="cn-north-4b", day=ONSET, failure=0.5),
        HostOnset(host=3, day=ONSET, failure=0.9),
        MessageOnset(day=ONSET, failure=0.05),
        VersionOnset(script="deploy_nginx", version="v9", day=ONSET, failure=0.3),
    )
    planted = Dataset(SimConfig(**SMALL, onsets=onsets))
    days = created_day(plain)
    before, after = outcomes(plain), outcomes(planted)
    assert before.keys() == after.keys()
    early = [key for key in before if days[key[0]] < ONSET]
    late = [key for key in before if days[key[0]] >= ONSET]
    assert early and late
    assert all(before[key] == after[key] for key in early)
    assert any(before[key] != after[key] for key in late)
    versions = {t.execute_uuid: t.version.name for t in planted.tickets}
    assert all(
        (versions[t.execute_uuid] == "v9") == (days[t.execute_uuid] >= ONSET)
        for t in planted.tickets
        if t.script.name == "deploy_nginx"
    )


def test_a_zone_onset_raises_that_zones_failures_only(plain: Dataset) -> None:
    planted = Dataset(
        SimConfig(**SMALL, onsets=(ZoneOnset(zone="cn-north-4b", day=ONSET, failure=0.5),))
    )
    zone_of = [h.zone_id for h in plain.hosts]
    days = created_day(plain)

    def failures(dataset: Dataset) -> Counter[str]:
        counted: Counter[str] = Counter()
        for (ticket, _), rows in outcomes(dataset).items():
            if days[ticket] >= ONSET:
                counted.update(zone_of[host] for status, host, _ in rows if status == "ABNORMAL")
        return counted

    base, shifted = failures(plain), failures(planted)
    assert shifted["cn-north-4b"] > 3 * base["cn-north-4b"] + 20
    assert shifted["cn-north-4a"] <= base["cn-north-4a"] + 5  # later batches may now stop


def test_the_message_template_appears_from_its_day_only(plain: Dataset) -> None:
    planted = Dataset(SimConfig(**SMALL, onsets=(MessageOnset(day=ONSET, failure=0.05),)))
    days = created_day(plain)
    seen = {
        days[ticket] >= ONSET
        for (ticket, _), rows in outcomes(planted).items()
        for status, _, message in rows
        if message.startswith("TLS handshake with mirror")
    }
    assert seen == {True}
    assert not any(
        message.startswith("TLS handshake")
        for rows in outcomes(plain).values()
        for *_, message in rows
    )


def test_without_rollouts_every_script_keeps_its_first_version() -> None:
    rolled = Dataset(SimConfig(**SMALL | {"days": 8}))
    steady = Dataset(SimConfig(**SMALL | {"days": 8}, rollouts=False))
    assert "v2.4.0" in {t.version.name for t in rolled.tickets}
    assert {t.version.name for t in steady.tickets} == {
        t.script.versions[0].name for t in steady.tickets
    }
