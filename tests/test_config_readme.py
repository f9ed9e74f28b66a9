"""config/README.md states every bound the config schema enforces, and the same ones.

Its tables (`sweep`, `model`, `budget`) are parsed: each row's *values* cell gives the
names a key takes, or its type and bounds in the words of the errors (``integer, at
least 2 and at most 200``); each is compared with ``memsweep.plan.config.schema()``,
which is made from the code. A bound changed in ``Job`` fails here until the README
says it too.
"""

from __future__ import annotations

import re

import pytest
import yaml

from memsweep.plan import config

from .conftest import ROOT

README = ROOT / "config" / "README.md"
SECTIONS = ("sweep", "model", "budget")
# The words of a bound (memsweep.world.checks), back to JSON schema's keywords.
WORDS = {
    "at least": "minimum",
    "at most": "maximum",
    "above": "exclusiveMinimum",
    "below": "exclusiveMaximum",
}
TYPES = {"integer": "integer", "number": "number"}


def tables() -> dict[str, dict[str, dict]]:
    """section -> key -> {"values": cell, "default": cell}, from the README's tables."""
    text = README.read_text()
    found: dict[str, dict[str, dict]] = {}
    for section in SECTIONS:
        part = text.split(f"\n## `{section}`", 1)[1].split("\n## ", 1)[0]
        rows = {}
        for line in part.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            match = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == 4 else None
            if match:
                rows[match.group(1)] = {"values": cells[2], "default": cells[3]}
        found[section] = rows
    return found


def parse_values(cell: str) -> dict:
    """A values cell as JSON schema: ``{"enum": [...]}`` or ``{"type": …, bounds…}``."""
    names = re.findall(r"`([^`]+)`", cell)
    kind = re.match(r"(integer|number)\b", cell)
    if kind is None:
        return {"enum": names}
    rule = {"type": TYPES[kind.group(1)]}
    for words, value in re.findall(r"(at least|at most|above|below) (-?[\d.]+)", cell):
        number = float(value)
        rule[WORDS[words]] = int(number) if number.is_integer() else number
    return rule


def expected(rule: dict) -> dict:
    """What a README row must say of a schema rule: its enum, or its type and bounds. A
    rule of names or a pattern (``world``: a shipped one, or the user's own) states its
    names; its row says the rest in words (see test_user_values_are_stated)."""
    if "anyOf" in rule:
        rule = next(part for part in rule["anyOf"] if "enum" in part)
    if "enum" in rule:
        return {"enum": rule["enum"]}
    return {"type": rule["type"], **config.bounds_of(rule)}


SCHEMA = config.schema()["properties"]
README_TABLES = tables()
KEYS = [(section, key) for section in SECTIONS for key in SCHEMA[section]["properties"]]


def test_every_key_of_the_schema_has_a_row_and_no_other():
    for section in SECTIONS:
        # A sweep may promote a model setting to an axis: the sweep table holds the
        # core axes, the model table the rest.
        keys = set(SCHEMA[section]["properties"])
        if section == "sweep":
            keys = set(SCHEMA["sweep"]["required"])
        assert set(README_TABLES[section]) == keys, section


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_each_bound_is_the_schemas(section, key):
    if section == "sweep" and key not in README_TABLES["sweep"]:
        row = README_TABLES["model"][key]  # a model setting, as an axis: the same values
    else:
        row = README_TABLES[section][key]
    rule = SCHEMA[section]["properties"][key]
    if section == "sweep":
        rule = rule["items"]
    stated = parse_values(row["values"])
    if section == "sweep" and key == "backend":
        # Found by scanning src/memsweep/agents/: a module added there is one more, with
        # no README change; the README names the modules there today.
        assert "src/memsweep/agents/" in row["values"]
        return
    assert stated == expected(rule), f"config/README.md {section}.{key}: {row['values']!r}"


def test_user_values_are_stated():
    """A setting that takes a user's own value beside its names (``world``) says so in
    its row, and the README has the section that row points to."""
    for key, rule in SCHEMA["model"]["properties"].items():
        if "anyOf" in rule:
            assert "your own" in README_TABLES["model"][key]["values"], key
    assert "\n## Your own model (`world`)\n" in README.read_text()


@pytest.mark.parametrize("section", ["model", "budget"])
def test_defaults_are_the_schemas(section):
    for key, rule in SCHEMA[section]["properties"].items():
        stated = README_TABLES[section][key]["default"].strip("`")
        assert stated == str(rule["default"]), f"{section}.{key}: {stated} vs {rule['default']}"


def test_the_backends_named_are_backends():
    backends = SCHEMA["sweep"]["properties"]["backend"]["items"]["enum"]
    text = README.read_text().split("| `backend` |", 1)[1].split("\n", 1)[0]
    named = {name for name in re.findall(r"`([\w-]+)`", text) if name.startswith(("pymdp", "lean"))}
    assert named and named <= set(backends)


def test_the_list_rules_are_stated():
    axis = SCHEMA["sweep"]["properties"]["grid"]
    assert axis["minItems"] == 1 and axis["uniqueItems"] is True
    text = " ".join(README.read_text().split())
    assert "non-empty list without duplicates" in text
    assert config.schema()["required"] == ["sweep"]
    assert "`sweep` (required), `also` (optional), `model` and `budget` (each key left out" in text
    assert "no other key at any level" in text


def test_the_custom_sweep_example_is_a_valid_config():
    """The README's example sweep passes the check and names every axis."""
    text = README.read_text()
    example = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert set(example["sweep"]) == set(SCHEMA["sweep"]["required"])
    checked = config.check(example)
    assert checked["model"]["steps"] == 3


def test_the_custom_sweep_command_names_its_folder_and_file():
    text = README.read_text()
    commands = [line for line in text.splitlines() if line.startswith(".venv/bin/snakemake")]
    assert commands == [
        ".venv/bin/snakemake --directory ~/sweeps/tiny --configfile ~/sweeps/tiny/sweep.yaml"
    ]
    # The Snakefile and the default profile it relies on are in the checkout, as it says.
    assert (ROOT / "Snakefile").exists() and (ROOT / "profiles" / "default").is_dir()
