"""Each environment variable is declared once (``pipelines/variables.py``), and everything
else follows from it: the README's table, the code that reads variables, the Dagster
resources' fields, and ``--help``."""

from __future__ import annotations

import ast
import re
import types
import typing
from pathlib import Path

import pytest

from assets.alerts import AlertsResource
from assets.resources import CocApiResource, WarehouseResource
from coc_etl.cli import build_parser
from pipelines.errors import ConfigError
from pipelines.settings import client_settings_from_env, warehouse_settings_from_env
from pipelines.variables import (
    ALERT_VARIABLES,
    BY_NAME,
    CLIENT_VARIABLES,
    TABLE_END,
    TABLE_START,
    VARIABLES,
    WAREHOUSE_VARIABLES,
    markdown_table,
)

ROOT = Path(__file__).resolve().parents[2]
#: the product's code: every environment variable it reads must be declared
PRODUCT = ("pipelines", "assets", "warehouse")
#: the one module that reads the process environment
DECLARATION = ROOT / "pipelines" / "variables.py"
#: names that look like variables but are not read from the environment: the keys of
#: delta-rs's storage options, which ``pipelines/lake/tables.py`` builds from the settings
NOT_VARIABLES = {
    "AWS_ALLOW_HTTP",
    "AWS_CONDITIONAL_PUT",
    "AWS_S3_ALLOW_UNSAFE_RENAME",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
}
NAME = re.compile(r"\b(?:COC|AWS)_[A-Z0-9_]*[A-Z0-9]\b")


def product_files() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(TABLE_START) == 1 and readme.count(TABLE_END) == 1
    table = readme.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"
    assert table == markdown_table(), (
        "README.md's configuration table differs from the declarations: run "
        "`python -m pipelines.variables --write README.md`"
    )


def test_every_variable_in_the_readme_table_once() -> None:
    rows = [line for line in markdown_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [v.name for v in VARIABLES]
    assert len(BY_NAME) == len(VARIABLES)  # no name declared twice


def test_every_variable_the_code_names_is_declared() -> None:
    named: dict[str, set[str]] = {}
    for path in product_files():
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            named.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    undeclared = {
        n: sorted(f) for n, f in named.items() if n not in BY_NAME and n not in NOT_VARIABLES
    }
    assert not undeclared, (
        f"named in the code but not declared in pipelines/variables.py: {undeclared}"
    )


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read the process environment: ``os.environ``, ``os.getenv``, ``os.environb``
    (``os`` under any name it is imported as), or ``from os import environ/getenv``."""
    reads = {"environ", "environb", "getenv", "putenv", "unsetenv"}
    names_of_os = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "os"
    }
    lines = []
    for node in ast.walk(tree):
        by_attribute = (
            isinstance(node, ast.Attribute)
            and node.attr in reads
            and isinstance(node.value, ast.Name)
            and node.value.id in names_of_os
        )
        by_import = (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and bool({a.name for a in node.names} & reads)
        )
        if by_attribute or by_import:
            lines.append(node.lineno)
    return lines


def test_only_the_declaration_reads_the_environment() -> None:
    reads = {
        str(path.relative_to(ROOT)): lines
        for path in product_files()
        if path != DECLARATION
        and (lines := _environment_reads(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert not reads, f"read the environment outside pipelines/variables.py: {reads}"
    assert _environment_reads(ast.parse(DECLARATION.read_text(encoding="utf-8")))


def test_the_scan_finds_an_environment_read() -> None:
    """The scan itself: each way of reading the environment is found."""
    for source in (
        "import os\nx = os.environ['COC_X']",
        "import os\nx = os.getenv('COC_X')",
        "from os import environ\n",
        "import os\nx = os.environ.get('COC_X', '')",
        "import os as system\nx = system.environ",
    ):
        assert _environment_reads(ast.parse(source)), source


def _field_type(annotation: object) -> set[type]:
    """The types a field holds besides None."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return {a for a in typing.get_args(annotation) if a is not type(None)}
    return {annotation} if isinstance(annotation, type) else set()


@pytest.mark.parametrize(
    ("resource", "names"),
    [
        (CocApiResource, CLIENT_VARIABLES),
        (WarehouseResource, WAREHOUSE_VARIABLES),
        (AlertsResource, ALERT_VARIABLES),
    ],
    ids=["coc", "warehouse", "alerts"],
)
def test_resource_fields_follow_the_declarations(resource: type, names: tuple[str, ...]) -> None:
    fields = resource.model_fields  # type: ignore[attr-defined]
    assert set(fields) == {BY_NAME[n].field for n in names}
    for name in names:
        variable = BY_NAME[name]
        field = fields[variable.field]
        assert _field_type(field.annotation) == {variable.kind}, (name, field.annotation)
        assert field.description is not None and field.description.startswith(f"{name}: ")
        assert variable.help in field.description


ENV = {
    "COC_ENDPOINT": "https://coc.example.com",
    "COC_AK": "AK1",
    "COC_SK": "SK-never-shown-0a1b2c",
    "COC_PROJECT_ID": "proj-1",
    "COC_MAX_RPS": "12.5",
    "COC_CONCURRENCY": "4",
    "COC_MAX_ATTEMPTS": "3",
    "COC_RETRY_BUDGET_S": "30",
    "COC_REDIS_URL": "redis://127.0.0.1:6379/0",
    "COC_WAREHOUSE": "s3://bucket/coc",
    "COC_DUCKDB": "/tmp/coc-variables-test.duckdb",
    "COC_TIMEZONE": "Asia/Shanghai",
    "COC_DAY_LOCK_TIMEOUT_S": "2.5",
    "COC_VACUUM_RETENTION_HOURS": "48",
    "COC_MAX_SHRINK": "0.25",
    "COC_ALLOW_SHRINK": "yes",
    "COC_ARCHIVE_RETENTION_DAYS": "30",
    "AWS_ACCESS_KEY_ID": "AKID",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-never-shown",
    "AWS_DEFAULT_REGION": "cn-north-4",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "COC_S3_URL_STYLE": "VHOST",
    "COC_S3_CONDITIONAL_PUT": "none",
    "COC_S3_CONNECT_TIMEOUT_S": "3",
    "COC_S3_TIMEOUT_S": "7",
    "COC_ALERT_DIGEST": "1",
    "COC_DASHBOARD_URL": "http://127.0.0.1:8501",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``ENV`` as the process environment (the resources' ``EnvVar`` resolve from it)."""
    import os

    for name in list(os.environ):
        if name.startswith(("COC_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return dict(ENV)


def test_a_resource_builds_the_settings_the_cli_builds(environment: dict[str, str]) -> None:
    coc = CocApiResource.from_env(environment).process_config_and_initialize()
    warehouse = WarehouseResource.from_env(environment).process_config_and_initialize()
    assert coc.client_settings() == client_settings_from_env(environment)
    assert warehouse.settings() == warehouse_settings_from_env(environment)
    # typed fields: a number is a number, a flag a flag, never text posing as the environment
    assert (coc.max_rps, coc.concurrency) == (12.5, 4)
    assert warehouse.allow_shrink is True and warehouse.archive_retention_days == 30
    alerts = AlertsResource.from_env(environment).process_config_and_initialize()
    assert alerts.digest is True and alerts.settings().digest


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [("COC_MAX_RPS", "0", None), ("COC_MAX_RPS", "unlimited", None), ("COC_MAX_RPS", "", 50.0)],
)
def test_no_cap_means_the_same_to_a_resource(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    raw: str,
    expected: object,
) -> None:
    monkeypatch.setenv(name, raw)
    env = environment | {name: raw}
    coc = CocApiResource.from_env(env).process_config_and_initialize()
    assert coc.client_settings().max_rps == client_settings_from_env(env).max_rps == expected


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("concurrency", 0, "COC_CONCURRENCY"),
        ("max_rps", 1e9, "COC_MAX_RPS"),
        ("max_rps", float("nan"), "COC_MAX_RPS"),
        ("retry_budget_s", -1.0, "COC_RETRY_BUDGET_S"),
    ],
)
def test_a_resource_checks_its_typed_fields_by_the_same_bounds(
    field: str, value: object, variable: str
) -> None:
    resource = CocApiResource(endpoint="https://coc.example.com", **{field: value})
    with pytest.raises(ConfigError, match=variable):
        resource.client_settings()
    with pytest.raises(ConfigError, match=variable):
        client_settings_from_env({"COC_ENDPOINT": "https://coc.example.com", variable: str(value)})


def _help(*args: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*args, "--help"])


def test_each_command_help_names_the_variables_it_reads(capsys: pytest.CaptureFixture[str]) -> None:
    _help("ingest")
    ingest = capsys.readouterr().out
    for name in (
        "COC_REDIS_URL",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "COC_S3_URL_STYLE",
        "COC_S3_CONDITIONAL_PUT",
        "COC_S3_TIMEOUT_S",
        "COC_S3_CONNECT_TIMEOUT_S",
        "COC_ENDPOINT",
        "COC_ARCHIVE_RETENTION_DAYS",
    ):
        assert re.search(rf"^  {name} ", ingest, re.MULTILINE), name
    for command in (
        "ingest",
        "replay",
        "warehouse",
        "migrate",
        "repartition",
        "report",
        "dashboard",
    ):
        args = [command, "--timezone", "UTC"] if command == "repartition" else [command]
        _help(*args)
        shown = set(
            re.findall(r"^  ((?:COC|AWS)_[A-Z0-9_]+) ", capsys.readouterr().out, re.MULTILINE)
        )
        assert shown == {v.name for v in VARIABLES if command in v.commands}, command
    _help()
    top = set(re.findall(r"^  ((?:COC|AWS)_[A-Z0-9_]+) ", capsys.readouterr().out, re.MULTILINE))
    assert top == set(BY_NAME)
