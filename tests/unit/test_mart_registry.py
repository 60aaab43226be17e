"""The registry (warehouse/marts.py) and the SQL files agree: one entry per file and one file
per entry, no build rule left in a comment, what each entry reads is what its SQL reads, and
docs/marts.md is what the registry writes."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.transform.schemas import DRIFT_TABLES, TABLES
from warehouse.catalog import render
from warehouse.definitions import MACROS_SQL, SQL_DIR, VIEWS_DIR, WINDOW_MACRO, sql_path
from warehouse.episodes import EPISODES_TABLE
from warehouse.marts import MODELS, Model, Rebuilt, Stage, check_models, model

DOCS = Path(__file__).resolve().parents[2] / "docs" / "marts.md"

#: a line of the comment dialect the registry replaced: ``-- build: per-day`` and the like
DIRECTIVE = re.compile(r"^\s*--\s*build\s*:", re.IGNORECASE | re.MULTILINE)


def sql_without_comments(path: Path) -> str:
    return re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))


def test_every_sql_file_has_one_registry_entry_and_every_entry_one_file() -> None:
    files = sorted(SQL_DIR.rglob("*.sql"))
    models = {(m.stage.value, m.name) for m in MODELS}
    assert len(models) == len(MODELS), "a model is registered twice"
    found = {(p.parent.name, p.stem) for p in files if p.parent.name != "views" and p != MACROS_SQL}
    assert found == models
    # the rest: the macros and one view template per table
    views = {p.stem for p in VIEWS_DIR.glob("*.sql")}
    assert views == set(TABLES) | set(DRIFT_TABLES)
    assert {p for p in files if p.parent == SQL_DIR} == {MACROS_SQL}
    assert all(sql_path(m).is_file() for m in MODELS)


def test_no_sql_file_carries_a_build_directive() -> None:
    carrying = [p.name for p in SQL_DIR.rglob("*.sql") if DIRECTIVE.search(p.read_text())]
    assert carrying == []


def test_the_directive_check_catches_a_directive() -> None:
    sql = "-- a mart: what it answers\n-- build: trailing 14\nCREATE VIEW a AS SELECT 1;\n"
    assert DIRECTIVE.search(sql)
    assert not DIRECTIVE.search("-- the build reads it per day\nCREATE VIEW a AS SELECT 1;\n")


def test_what_each_entry_reads_is_what_its_sql_reads() -> None:
    """Every table or model named in a file's SQL (comments aside) is in its entry's reads,
    and every name in reads is in its SQL: the build orders models by reads. A mart with
    episodes stores them in ``EPISODES_TABLE`` (``alert_episodes`` reads them)."""
    names = set(TABLES) | {m.name for m in MODELS}
    (tracked,) = (m.name for m in MODELS if m.episodes)
    episodes = {EPISODES_TABLE.removeprefix("mart_data."): tracked}
    for entry in MODELS:
        sql = sql_without_comments(sql_path(entry))
        named = {n for n in names - {entry.name} if re.search(rf"\b{n}\b", sql)}
        named |= {episodes[n] for n in episodes if re.search(rf"\bmart_data\.{n}\b", sql)}
        assert named == set(entry.reads), entry.name


def test_what_reads_through_the_window_is_declared_so() -> None:
    for entry in MODELS:
        uses = f"{WINDOW_MACRO}(" in sql_without_comments(sql_path(entry))
        assert uses == entry.windowed, entry.name


def test_the_marts_page_is_generated_from_the_registry() -> None:
    assert DOCS.read_text(encoding="utf-8") == render(), (
        "docs/marts.md is stale: python -m warehouse.catalog > docs/marts.md"
    )
    for entry in MODELS:
        assert f"`{entry.name}`" in DOCS.read_text(encoding="utf-8")


def test_the_marts_page_says_how_each_is_rebuilt() -> None:
    shifts = model("failure_shifts")
    assert shifts.rebuilt is Rebuilt.TRAILING and shifts.trailing_days == 14
    longer = replace(shifts, trailing_days=21)
    assert "c .. c + 21" in longer.describe() and "c .. c + 14" in shifts.describe()


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        # a per-day mart cannot read rows recomputed whole
        (
            Model(
                name="failure_rates_daily",
                stage=Stage.MART,
                rebuilt=Rebuilt.PER_DAY,
                reads=("host_failures",),
            ),
            "failure_rates_daily, rebuilt per day, cannot read host_failures",
        ),
        # a tally counts a per-month rollup
        (
            Model(
                name="failure_message_host_months",
                stage=Stage.ROLLUP,
                rebuilt=Rebuilt.TALLY,
                reads=("failure_message_hosts",),
            ),
            "cannot read failure_message_hosts",
        ),
        (
            Model(name="ticket_outcomes", stage=Stage.MART, rebuilt=Rebuilt.PER_DAY, reads=("x",)),
            "ticket_outcomes reads x, neither a table nor a model",
        ),
    ],
)
def test_a_registry_that_cannot_be_built_is_refused(changed: Model, message: str) -> None:
    models = tuple(changed if m.name == changed.name else m for m in MODELS)
    with pytest.raises(ValueError, match=message):
        check_models(models)
    with pytest.raises(ValueError, match="registered twice"):
        check_models((*MODELS, MODELS[0]))


def test_a_changed_registry_entry_changes_the_definitions_hash(monkeypatch) -> None:
    """How a model is rebuilt is part of its definition: a file built under another rule is
    rebuilt in full, as when its SQL changes."""
    import warehouse.definitions as definitions

    before = definitions.definitions_hash()
    longer = tuple(
        replace(m, trailing_days=21) if m.rebuilt is Rebuilt.TRAILING else m for m in MODELS
    )
    monkeypatch.setattr(definitions, "MODELS", longer)
    assert definitions.definitions_hash() != before
