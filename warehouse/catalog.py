"""``docs/marts.md``, written from the registry (``marts.py``) and the marts' descriptions.

``python -m warehouse.catalog > docs/marts.md`` writes it again; a test checks that the file
in the repository is what this writes.
"""

from __future__ import annotations

from warehouse.definitions import mart_description, sql_path
from warehouse.marts import MARTS, MODELS, Model, Stage

_INTRO = """\
# Marts

The marts are views in `coc.duckdb` over rows the build stores in the schema `mart_data`
(querying: [querying.md](querying.md)). How each one is rebuilt is declared in
`warehouse/marts.py`; the build plans from it which days and marts an update recomputes
(`warehouse/plan.py`), and an incremental build gives the same rows as a full rebuild.

This page is generated from the registry: `python -m warehouse.catalog > docs/marts.md`.
"""


def render() -> str:
    """The page: each mart, what it answers, how it is rebuilt, what it reads; then the
    parts and rollups it is merged from."""
    lines = [_INTRO, "| mart | what it answers | rebuilt | reads |", "|---|---|---|---|"]
    for mart in MARTS:
        lines.append(
            f"| `{mart.name}` | {_first_sentence(mart)} | {mart.describe()} | {_reads(mart)} |"
        )
    lines += [
        "",
        "## Parts and rollups",
        "",
        "Stored in `mart_data` only: per-day figures whose columns merge exactly across days, "
        "merged per month, from which the all-time marts are merged.",
        "",
        "| table | rebuilt | reads |",
        "|---|---|---|",
    ]
    for model in MODELS:
        if model.stage is not Stage.MART:
            lines.append(f"| `{model.name}` | {model.describe()} | {_reads(model)} |")
    return "\n".join(lines) + "\n"


def _first_sentence(mart: Model) -> str:
    """The question a mart answers: its description up to the first question mark or full
    stop."""
    text = mart_description(sql_path(mart))
    ends = [i for i in (text.find("? "), text.find(". ")) if i >= 0]
    return (text[: min(ends) + 1] if ends else text).replace("|", "\\|")


def _reads(model: Model) -> str:
    return ", ".join(f"`{name}`" for name in model.reads)


if __name__ == "__main__":
    print(render(), end="")
