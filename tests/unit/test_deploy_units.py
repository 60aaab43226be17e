"""The systemd units of ``deploy/systemd/`` and their environment file, read as systemd reads
them (``coc_etl/systemd_units.py``): every variable a unit, ``deploy/dagster.yaml`` or
``deploy/celery.yaml`` reads, and every ``COC_*`` the product reads, is in
``coc.env.example``; each unit's command is a program of this environment. (That the
commands start a working deployment: ``tests/integration/test_cluster.py``, whose harness
starts every service with its unit's command.)"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from coc_etl.systemd_units import (
    ENV_EXAMPLE,
    SYSTEMD,
    UnitError,
    exec_start,
    read_environment_file,
    read_unit,
    service_command,
    variables_used,
)

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
UNITS = ("coc-webserver.service", "coc-daemon.service", "coc-worker@.service")
#: the secrets of the example: placeholders only
SECRETS = ("COC_SK", "AWS_SECRET_ACCESS_KEY", "COC_DAGSTER_PG_URL", "COC_REDIS_URL")


def test_every_unit_is_there_and_its_variables_are_in_the_environment_file() -> None:
    example = read_environment_file(ENV_EXAMPLE)
    assert sorted(p.name for p in SYSTEMD.glob("*.service")) == sorted(UNITS)
    for name in UNITS:
        unit = read_unit(SYSTEMD / name)
        assert variables_used(unit) <= set(example), name
        assert unit.one("EnvironmentFile") == "/etc/coc/coc.env", name


def test_the_instance_and_worker_settings_read_only_variables_of_the_environment_file() -> None:
    example = read_environment_file(ENV_EXAMPLE)
    for config in ("dagster.yaml", "celery.yaml"):
        text = (ROOT / "deploy" / config).read_text()
        used = set(re.findall(r"env:\s*([A-Z_][A-Z0-9_]*)", text))
        assert used and used <= set(example), (config, used - set(example))


def test_every_variable_the_product_reads_is_in_the_environment_file() -> None:
    """Each ``COC_*`` named in the product's code: set, or shown commented out."""
    text = ENV_EXAMPLE.read_text()
    named = {
        m
        for folder in ("pipelines", "assets", "warehouse")
        for path in (ROOT / folder).rglob("*.py")
        for m in re.findall(r"\"(COC_[A-Z0-9_]+)\"", path.read_text())
    }
    assert named
    missing = sorted(v for v in named if not re.search(rf"^#? ?{v}=", text, re.M))
    assert missing == []


def test_secrets_in_the_example_are_placeholders() -> None:
    example = read_environment_file(ENV_EXAMPLE)
    for name in SECRETS:
        assert "<" in example[name] and ">" in example[name], name


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_runs_a_program_of_this_environment_in_this_checkout(name: str) -> None:
    command = service_command(name, {}, root=ROOT, bin_dir=BIN, instance="worker-a")
    assert Path(command.argv[0]).is_file(), command.argv[0]
    assert Path(command.argv[0]).parent == BIN
    assert command.cwd == ROOT
    assert command.environment["PATH"].split(":")[0] == str(BIN)
    for word in command.argv:  # every file the command names exists here
        if word.startswith("/"):
            assert Path(word).exists(), word


def test_the_worker_template_takes_its_name_from_the_instance() -> None:
    command = service_command("coc-worker@.service", {}, root=ROOT, bin_dir=BIN, instance="w-7")
    argv = command.argv
    assert argv[argv.index("--name") + 1] == "w-7"
    assert "--concurrency=1" in argv


def test_expansion_is_systemds(tmp_path: Path) -> None:
    unit = tmp_path / "x.service"
    unit.write_text(
        "[Unit]\nDescription=x\n[Service]\n"
        'ExecStart=/bin/echo ${A}-x "${B}" $B \\\n  $$HOME %%i %i\n'
    )
    found = read_unit(unit)
    argv = exec_start(found, {"A": "1", "B": "two words"}, instance="n")
    assert argv == ["/bin/echo", "1-x", "two words", "two", "words", "$HOME", "%i", "n"]
    with pytest.raises(UnitError, match=r"\$\{A\} is set nowhere"):
        exec_start(found, {"B": "b"}, instance="n")
