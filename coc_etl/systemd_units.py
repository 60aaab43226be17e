"""The systemd units of ``deploy/systemd/``, read as systemd reads them: the loopback harness
(``coc_etl/cluster.py``) starts each service with the command its unit declares, so a wrong
unit fails the cluster test.

What is understood of a unit, and how:

- ``ExecStart=`` (one command line; ``\\`` continues a line): split into words with systemd's
  quoting (``"..."``, ``'...'``); ``${VAR}`` is replaced inside a word, ``$VAR`` as a word of
  its own splits into several on whitespace, ``$$`` is a ``$``; the specifiers ``%i``
  (the instance of a template such as ``coc-worker@worker-a``) and ``%%``. A variable that
  neither the environment file nor the caller sets is an error here (systemd would pass an
  empty word): the command would be wrong on a machine too.
- ``Environment=`` assignments (added to the process's environment).
- ``EnvironmentFile=``: ``KEY=VALUE`` lines, ``#``/``;`` comments, optional quotes.
- ``WorkingDirectory=`` and paths under ``INSTALL_ROOT`` (where the units expect the
  repository): mapped by the caller onto a checkout (``relocate``).

Prefixes of ``ExecStart`` (``-``, ``@``, ``+``, ``!``), several ``ExecStart`` lines and
other specifiers are refused: the units do not use them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SYSTEMD = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
#: where the units expect this repository installed (its ``.venv`` inside)
INSTALL_ROOT = "/opt/coc"
#: the environment file the units read, and the example of it in this repository
ENV_FILE = "/etc/coc/coc.env"
ENV_EXAMPLE = SYSTEMD / "coc.env.example"

_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WORD_VAR = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_SPECIFIER = re.compile(r"%(.)")


class UnitError(ValueError):
    """A unit or environment file that cannot be read as systemd would read it."""


@dataclass(frozen=True)
class Unit:
    """One ``[Service]`` section: its raw directives, by name, in order."""

    name: str
    directives: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def one(self, key: str) -> str:
        values = self.directives.get(key, ())
        if len(values) != 1:
            raise UnitError(f"{self.name}: expected one {key}=, found {len(values)}")
        return values[0]

    def all(self, key: str) -> tuple[str, ...]:
        return self.directives.get(key, ())


def read_unit(path: Path) -> Unit:
    """The ``[Service]`` section of the unit file ``path``."""
    directives: dict[str, list[str]] = {}
    section = ""
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UnitError(f"{path.name}: not a KEY=VALUE line: {line!r}")
        if section == "Service":
            directives.setdefault(key.strip(), []).append(value.strip())
    return Unit(path.name, {k: tuple(v) for k, v in directives.items()})


def read_environment_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as systemd's ``EnvironmentFile=`` reads them."""
    found: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UnitError(f"{path.name}:{number}: not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[key] = value
    return found


def _specifiers(text: str, unit: str, instance: str | None) -> str:
    def one(match: re.Match[str]) -> str:
        spec = match.group(1)
        if spec == "%":
            return "%"
        if spec == "i" and instance is not None:
            return instance
        raise UnitError(f"{unit}: specifier %{spec} not supported (instance {instance!r})")

    return _SPECIFIER.sub(one, text)


def _expand(word: str, variables: Mapping[str, str], unit: str) -> list[str]:
    whole = _WORD_VAR.match(word)
    if whole:
        name = whole.group(1)
        if name not in variables:
            raise UnitError(f"{unit}: ${name} is set nowhere")
        return variables[name].split()

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise UnitError(f"{unit}: ${{{name}}} is set nowhere")
        return variables[name]

    expanded = _BRACED.sub(one, word.replace("$$", "\0"))
    if "$" in expanded:
        raise UnitError(f"{unit}: a $ that is not ${{VAR}} in {word!r}")
    return [expanded.replace("\0", "$")]


def variables_used(unit: Unit) -> set[str]:
    """The variables a unit's ``ExecStart`` refers to."""
    line = unit.one("ExecStart")
    return set(_BRACED.findall(line)) | {
        m.group(1) for w in line.split() if (m := _WORD_VAR.match(w))
    }


def exec_start(
    unit: Unit, variables: Mapping[str, str], *, instance: str | None = None
) -> list[str]:
    """The command ``ExecStart=`` runs, with ``variables`` (the environment file's and the
    unit's ``Environment=``) expanded, as systemd would."""
    line = _specifiers(unit.one("ExecStart"), unit.name, instance)
    if line[:1] in "-@+!:":
        raise UnitError(f"{unit.name}: ExecStart prefixes are not supported")
    words = shlex.split(line, comments=False, posix=True)
    command = [part for word in words for part in _expand(word, variables, unit.name)]
    if not command or not command[0].startswith("/"):
        raise UnitError(f"{unit.name}: ExecStart must start with an absolute path")
    return command


def environment(unit: Unit, *, instance: str | None = None) -> dict[str, str]:
    """The unit's ``Environment=`` assignments."""
    found: dict[str, str] = {}
    for line in unit.all("Environment"):
        for word in shlex.split(_specifiers(line, unit.name, instance)):
            key, sep, value = word.partition("=")
            if not sep:
                raise UnitError(f"{unit.name}: Environment={line!r} is not KEY=VALUE")
            found[key] = value
    return found


def relocate(value: str, root: Path, bin_dir: Path) -> str:
    """A path of the units (under ``INSTALL_ROOT``) on the checkout at ``root`` whose
    environment's executables are in ``bin_dir``; anything else unchanged. Works on a
    ``PATH``-like list too."""
    venv_bin = f"{INSTALL_ROOT}/.venv/bin"
    parts = []
    for part in value.split(":"):
        if part == venv_bin or part.startswith(venv_bin + "/"):
            part = str(bin_dir) + part[len(venv_bin) :]
        elif part == INSTALL_ROOT or part.startswith(INSTALL_ROOT + "/"):
            part = str(root) + part[len(INSTALL_ROOT) :]
        parts.append(part)
    return ":".join(parts)


@dataclass(frozen=True)
class ServiceCommand:
    """How to start one service as its unit would: the command, the variables the unit adds
    to the environment, and the working directory."""

    argv: list[str]
    environment: dict[str, str]
    cwd: Path


def service_command(
    unit_file: str,
    overrides: Mapping[str, str],
    *,
    root: Path,
    bin_dir: Path,
    instance: str | None = None,
    env_file: Path = ENV_EXAMPLE,
) -> ServiceCommand:
    """The command of ``deploy/systemd/<unit_file>``, its variables taken from the unit's
    ``Environment=``, then ``env_file``, then ``overrides`` (the harness's own values), its
    paths relocated onto the checkout at ``root``. ``environment`` is the unit's
    ``Environment=`` (relocated), to put over the process's environment."""
    unit = read_unit(SYSTEMD / unit_file)
    declared = unit.all("EnvironmentFile")
    if declared != (ENV_FILE,):
        raise UnitError(f"{unit.name}: EnvironmentFile={ENV_FILE} expected, got {declared}")
    added = {k: relocate(v, root, bin_dir) for k, v in environment(unit, instance=instance).items()}
    # systemd: the environment file's values override Environment='s; the caller's values
    # stand in for the file's
    variables = {**added, **read_environment_file(env_file), **overrides}
    argv = [relocate(w, root, bin_dir) for w in exec_start(unit, variables, instance=instance)]
    cwd = Path(relocate(unit.one("WorkingDirectory"), root, bin_dir))
    return ServiceCommand(argv=argv, environment=added, cwd=cwd)
