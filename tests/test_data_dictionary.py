"""docs/data.md explains every value a measurement writes.

Two real measurements of a tiny configuration (``lean`` CSR float32 and ``pymdp-numpy``
dense float64, grid 3, 3 steps) and one failed record: every (phase, operation, metric,
probe) they hold must have its row in docs/data.md's table of rows, with the same unit;
every column, phase, unit, layout and registered probe must be there too, and each
row's repeat and step (null, or a number) as measured. The parts of the page made from
the code (the configuration columns, the probes, the summary tables) are compared with
what the code makes now; rewrite them with

    .venv/bin/python -m tests.test_data_dictionary
"""

from __future__ import annotations

import re
import sys

import pytest

from memsweep.agents.base import OBJECTS
from memsweep.agents.pymdp_jax import PRIVATE_LAYOUT, SHARED_LAYOUT
from memsweep.harness import calibration, probes
from memsweep.plan import jobs
from memsweep.plan.config import bounds_text
from memsweep.results import aggregate, schema
from memsweep.world import registry as worlds

from .conftest import ROOT, memsweep

DATA_MD = ROOT / "docs" / "data.md"
_BLOCK = re.compile(
    r"(<!-- generated: (?P<name>\w+)[^>]*-->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
    re.DOTALL,
)
TINY = [
    *("--grid", "3", "--agents", "1", "--sharing", "shared", "--policy-len", "1"),
    *("--steps", "3", "--repeats", "1"),
]
BACKENDS = {
    "lean": ["--backend", "lean", "--storage", "csr", "--dtype", "float32"],
    "pymdp-numpy": ["--backend", "pymdp-numpy", "--storage", "dense", "--dtype", "float64"],
    # The only backend that compiles: its XLA plans are rows of their own.
    "pymdp-jax": ["--backend", "pymdp-jax", "--storage", "dense", "--dtype", "float32"],
}


# The generated parts ------------------------------------------------------------------
def _first_sentence(text: str) -> str:
    sentence = " ".join(text.split()).split(". ")[0].rstrip(".")
    return sentence[0].lower() + sentence[1:]


# The settings whose values are found by scanning modules (any module added is one more).
SCANNED = {
    "backend": lambda: "a backend: one module each in `src/memsweep/agents/`",
    "world": lambda: (
        "a world of `src/memsweep/world/` ("
        + ", ".join(f"`{name}`" for name in worlds.names())
        + "), a user's `package.module:function` or a `.npz` file"
    ),
}


def configuration_block() -> str:
    """The configuration columns, from the Job dataclass (its fields' metadata)."""
    derived = {
        "config_id": (
            "derived",
            _first_sentence(jobs.Job.config_id.__doc__),
            "12 hex digits",
        ),
        "states": ("derived", _first_sentence(jobs.Job.states.__doc__), "grid²"),
        "layout": (
            "outcome",
            "how the backend holds the agents (see [`layout`](#layout))",
            "a name",
        ),
    }
    lines = [
        "| column | type | role | meaning | values |",
        "|---|---|---|---|---|",
    ]
    for name, kind in jobs.column_types().items():
        type_name = {str: "string", int: "int64", float: "float64"}[kind]
        if name in derived:
            role, meaning, values = derived[name]
        else:
            field = jobs.SETTINGS[name]
            role = "axis" if name in jobs.CORE_AXES else f"model (default {field.default})"
            meaning = field.metadata["help"]
            # Choices found by scanning (any module added is one more) are said in words.
            scanned = callable(field.metadata["choices"])
            values = SCANNED[name]() if scanned else bounds_text(name)
        lines.append(f"| `{name}` | {type_name} | {role} | {meaning} | {values} |")
    return "\n".join(lines) + "\n"


def probes_block() -> str:
    """Every registered probe, from :data:`memsweep.harness.probes.REGISTRY`."""
    lines = [
        "| probe | unit | what it sees | its level rows | window peak | calibration limit |",
        "|---|---|---|---|---|---|",
    ]
    for name, probe in probes.REGISTRY.items():
        level = (
            f"`{probe.level_metric}_bytes`, `{probe.level_metric}_growth_per_100_steps_bytes`"
            if probe.level_metric
            else "—"
        )
        peak = "`call_peak_bytes`" if probe.peak else "—"
        limit = calibration.LIMITS.get(name)
        limit_text = f"±{100 * limit.fraction:g} %" if limit else "not calibrated"
        lines.append(
            f"| `{name}` | {probe.unit} | {probe.sees} | {level} | {peak} | {limit_text} |"
        )
    return "\n".join(lines) + "\n"


def tables_block() -> str:
    """The summary tables and their headers, from the aggregate's own code."""
    lines = [
        "| table | headline rows | a measured column of the CSV | of the Markdown |",
        "|---|---|---|---|",
    ]
    for metric, unit in schema.SUMMARY_METRICS.items():
        shown = aggregate.SHOWN_AS[unit][1]
        csv, md = (aggregate.heading(metric, "<probe>", u) for u in (unit, shown))
        rows = f"`summary`/`all`/`{metric}`"
        lines.append(f"| `{metric}.csv`, `{metric}.md` | {rows} | `{csv}` | `{md}` |")
    return "\n".join(lines) + "\n"


BLOCKS = {"configuration": configuration_block, "probes": probes_block, "tables": tables_block}


def generated(text: str) -> str:
    """``text`` with every generated block made anew."""
    return _BLOCK.sub(lambda m: m.group(1) + BLOCKS[m.group("name")]() + m.group(4), text)


# The page, parsed ---------------------------------------------------------------------
def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_rows(text: str) -> list[dict]:
    """The table of rows (under ``## Rows``): one dict per line, its cells' names as lists."""
    section = text.split("\n## Rows", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) < 6 or not cells[0].startswith("`"):
            continue
        phase, operations, metrics, probe_names, unit = (_ticked(c) for c in cells[:5])
        rows.append(
            {
                "phase": phase[0],
                "operations": operations,
                "metrics": metrics,
                "probes": probe_names,
                "unit": unit[0] if unit else cells[4],
                "repeat, step": [part.strip() for part in cells[5].split(",")],
            }
        )
    return rows


def _matches(rows: list[dict], phase, operation, metric, probe) -> list[dict]:
    return [
        r
        for r in rows
        if r["phase"] == phase
        and operation in r["operations"]
        and metric in r["metrics"]
        and probe in r["probes"]
    ]


def missing(table, rows: list[dict]) -> list[str]:
    """Each (phase, operation, metric, probe, unit) of ``table`` that no row documents."""
    found = []
    keys = table[["phase", "operation", "metric", "probe", "unit"]].drop_duplicates()
    for phase, operation, metric, probe, unit in keys.itertuples(index=False):
        matches = _matches(rows, phase, operation, metric, probe)
        if not matches:
            found.append(f"{phase}/{operation}/{metric} by {probe}")
        elif all(r["unit"] != unit for r in matches):
            found.append(f"{phase}/{operation}/{metric} by {probe}: unit {unit}, not as documented")
    return found


# The tests --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text() -> str:
    return DATA_MD.read_text()


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    """A tiny lean and pymdp-numpy measurement and a failed record, as DataFrames."""
    from memsweep.harness import supervisor

    folder = tmp_path_factory.mktemp("data-dictionary")
    reference = folder / "reference.npz"
    job = jobs.Job("pymdp-numpy", "dense", "float64", 3, 1, "shared", 1, steps=3)
    assert supervisor.make_reference_file(job, reference).ok
    tables = {}
    for backend, axes in BACKENDS.items():
        out = folder / f"{backend}.parquet"
        memsweep("measure", *axes, *TINY, "--reference", str(reference), "--out", str(out))
        tables[backend] = schema.read_frame(out)
    # A cap below any Python process: the child is stopped, its failed record is written.
    out = folder / "failed.parquet"
    axes = BACKENDS["lean"]
    capped = ["--mem-cap-mb", "1", "--reference", str(reference), "--out", str(out)]
    memsweep("measure", *axes, *TINY, *capped, check=False)
    tables["failed"] = schema.read_frame(out)
    return tables


def test_generated_parts_are_current(text):
    names = [m.group("name") for m in _BLOCK.finditer(text)]
    assert sorted(names) == sorted(BLOCKS), "docs/data.md lost a generated block"
    assert generated(text) == text, (
        "docs/data.md is older than the code: run .venv/bin/python -m tests.test_data_dictionary"
    )


@pytest.mark.parametrize("backend", [*BACKENDS, "failed"])
def test_every_row_measured_is_documented(measured, text, backend):
    table = measured[backend]
    assert not table.empty
    undocumented = missing(table, documented_rows(text))
    assert not undocumented, f"not in docs/data.md's table of rows: {undocumented}"


@pytest.mark.parametrize("backend", [*BACKENDS, "failed"])
def test_repeat_and_step_are_as_documented(measured, text, backend):
    """Where the table of rows says null, every such row has them null; where it says a
    number or a letter, none has (never -1 for "not applicable")."""
    rows, wrong = documented_rows(text), []
    table = measured[backend]
    for key, group in table.groupby(["phase", "operation", "metric", "probe"]):
        matches = _matches(rows, *key)
        if not matches:
            continue  # undocumented: test_every_row_measured_is_documented says so
        for column, documented in zip(("repeat", "step"), matches[0]["repeat, step"], strict=True):
            if (documented == "null") != group[column].isna().all() or (
                documented != "null" and group[column].isna().any()
            ):
                wrong.append(f"{'/'.join(key)}: {column} documented {documented}")
            if documented.isdigit() and set(group[column]) != {int(documented)}:
                wrong.append(f"{'/'.join(key)}: {column} {set(group[column])}, not {documented}")
    assert not wrong, wrong
    assert {str(table[c].dtype) for c in ("repeat", "step")} == {"Int64"}


def test_the_failed_record_is_a_failure(measured):
    table = measured["failed"]
    assert set(table.phase) == {"failure"} and set(table.status) == {"failed"}


def test_every_value_in_the_data_is_explained(measured, text):
    """Layouts and statuses measured, and every constant the code can write."""
    for frame in measured.values():
        for layout in frame.layout.dropna().unique():
            assert f"`{layout}`" in text, f"layout {layout} is not in docs/data.md"
        for status in frame.status.unique():
            assert f"`{status}`" in text, f"status {status} is not in docs/data.md"
    for layout in (OBJECTS, SHARED_LAYOUT, PRIVATE_LAYOUT):
        assert f"`{layout}`" in text, f"layout {layout} is not in docs/data.md"
    for status in ("ok", "failed", "unavailable"):
        assert f"`{status}`" in text, status


def test_every_column_phase_and_unit_is_documented(text):
    for column in schema.COLUMNS:
        assert f"| `{column}` |" in text, f"column {column} is not in docs/data.md"
    phases = {row["phase"] for row in documented_rows(text)}
    assert set(schema.PHASES) <= phases, f"phases without rows: {set(schema.PHASES) - phases}"
    for unit in schema.UNITS:
        assert f"| `{unit}` |" in text, f"unit {unit} is not in docs/data.md's units"


def test_every_probe_is_documented(text):
    probes_section = text.split("\n## Probes", 1)[1]
    for name in probes.REGISTRY:
        assert f"| `{name}` |" in probes_section, f"probe {name} is not in docs/data.md's probes"


def test_summary_metrics_have_their_units(text):
    rows = [row for row in documented_rows(text) if row["phase"] == "summary"]
    for metric, unit in schema.SUMMARY_METRICS.items():
        units = {row["unit"] for row in rows if metric in row["metrics"]}
        assert units == {unit}, f"summary/{metric}: documented in {units}, written in {unit}"


if __name__ == "__main__":
    page = DATA_MD.read_text()
    DATA_MD.write_text(generated(page))
    print(f"{DATA_MD.relative_to(ROOT)}: generated parts rewritten", file=sys.stderr)
    sys.exit(0)
