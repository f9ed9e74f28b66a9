"""Config fuzzing: whatever a config holds, checking and planning it either returns a plan or
raises :class:`ConfigError` with a message that names a key of the config.

Three kinds of generated configs (property-based, hypothesis): anything (random keys,
types and nesting), the tiny sweep with a few keys changed to random values, and sweeps
of valid shape with values drawn near and past their bounds (NaN and infinities too,
which YAML reads as ``.nan`` and ``.inf``). In-process: ``config.check`` then
``sweep.plan`` and the summary the CLI prints. Then a handful through the real
``memsweep plan``: exit status 0 or 2, never a traceback.
"""

from __future__ import annotations

import copy
import math
import re
import subprocess
import sys

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsweep.plan import config as config_module
from memsweep.plan import jobs, sweep
from memsweep.plan.config import ConfigError

from .conftest import BIN, tiny_config

SECTIONS = ("sweep", "model", "budget")
KNOWN_KEYS = (*SECTIONS, *jobs.SETTINGS, "max_job_mb")
EXAMPLES = 300  # per kind of config: 900 in all
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Keys: the schema's own, names like them, and what YAML makes of `1:` or `null:`.
keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.from_regex(r"[a-z_][a-z0-9_-]{0,12}", fullmatch=True),
    st.integers(-3, 300),
    st.sampled_from([None, True, False]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([*jobs.choices("backend"), "dense", "csr", "float16", "shared", "local"]),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)


def _inside(name: str):
    """Values a setting takes: its choices, or numbers within its bounds (at them too)."""
    choices, bounds, kind = jobs.choices(name), jobs.bounds(name), jobs.TYPES[name]
    if choices is not None:
        return st.sampled_from(choices)
    low = bounds.get("minimum", bounds.get("exclusiveMinimum", 0))
    high = bounds.get("maximum", bounds.get("exclusiveMaximum", low + 12))
    if kind is int:
        return st.integers(int(low), int(min(high, low + 12)))
    return st.floats(
        low,
        high,
        exclude_min="exclusiveMinimum" in bounds,
        exclude_max="exclusiveMaximum" in bounds,
    )


def _past(name: str):
    """Values a setting does not take: just past its bounds, NaN, infinities, other types."""
    bounds = jobs.bounds(name)
    edges = [b + d for b in bounds.values() for d in (-1, -1e-9, 1e-9, 1)]
    return st.one_of(
        st.sampled_from(edges or [-1]),
        st.sampled_from([math.nan, math.inf, -math.inf, 10**30, True, "", "LEAN", None]),
        st.sampled_from(jobs.choices(name) or ["dense"]).map(str.upper),
    )


@st.composite
def shaped(draw):
    """A sweep of the right shape, every value valid (every axis a short list, model
    settings, a budget), then half of the time one value past its bounds."""
    sweep_section = {}
    axes = [*jobs.CORE_AXES]
    axes += draw(st.lists(st.sampled_from(jobs.MODEL_SETTINGS), max_size=2, unique=True))
    for name in axes:
        sweep_section[name] = draw(st.lists(_inside(name), min_size=1, max_size=2, unique=True))
    chosen = draw(st.lists(st.sampled_from(jobs.MODEL_SETTINGS), unique=True))
    model = {name: draw(_inside(name)) for name in chosen}
    budget = draw(
        st.one_of(
            st.just({}),
            st.fixed_dictionaries({"max_job_mb": st.sampled_from([4000, 1e9, 300.5, 50])}),
            st.fixed_dictionaries({"max_job_mb": st.one_of(st.floats(), st.integers())}),
        )
    )
    config = {"sweep": sweep_section, "model": model, "budget": budget}
    if draw(st.booleans()):
        section = draw(st.sampled_from(["sweep", "model"]))
        if config[section]:
            name = draw(st.sampled_from(sorted(config[section])))
            wild = draw(_past(name))
            if section == "sweep":
                config["sweep"][name] = [*config["sweep"][name], wild]
            else:
                config["model"][name] = wild
    return config


@st.composite
def changed(draw):
    """The tiny sweep with one to three keys set to random values, added or deleted."""
    config = tiny_config()
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from([*SECTIONS, "extra"]))
        node = config.get(section)
        if not isinstance(node, dict):
            config[section] = draw(anything)
            continue
        key = draw(st.one_of(st.sampled_from(list(node)), keys) if node else keys)
        action = draw(st.sampled_from(["set", "set", "delete", "list"]))
        if action == "delete":
            node.pop(key, None)
        elif action == "list":
            node[key] = draw(st.lists(scalars, max_size=3))
        else:
            node[key] = draw(anything)
    return config


_PART = re.compile(r"\[(-?\d+|True|False)\]|([^.\[\]]+)")  # [3] or [True], or a name


def resolves(config, key: str) -> bool:
    """Whether ``key`` (``sweep.grid[0]``, ``(top level)``) is a place in ``config``."""
    if key == "(top level)":
        return True
    node = config
    for index, name in _PART.findall(key):
        if isinstance(node, list) and index.lstrip("-").isdigit():
            position = int(index)
            if not -len(node) <= position < len(node):
                return False
            node = node[position]
        elif isinstance(node, dict):
            part = index or name  # a dict's keys are matched as the message writes them
            matches = [value for k, value in node.items() if str(k) == part]
            if not matches:
                return False
            node = matches[0]
        else:
            return False
    return True


def named_key(message: str) -> str:
    """The key the first error of ``message`` names (``invalid config: KEY: what``)."""
    first = message.removeprefix("invalid config:").strip().splitlines()[0]
    return first.split(": ", 1)[0]


def check_and_plan(config) -> None:
    checked = copy.deepcopy(config)
    try:
        planned = sweep.plan(config_module.check(checked))
    except ConfigError as error:
        key = named_key(str(error))
        # check() fills in the defaults it reports on (budget.max_job_mb): look there too.
        assert resolves(config, key) or resolves(checked, key), (key, str(error))
        return
    assert planned and all(isinstance(p, sweep.PlannedJob) for p in planned)
    assert any(p.status == sweep.RUN for p in planned)
    assert sweep.summary(planned).startswith("memsweep plan: ")


@FUZZ
@given(anything)
def test_any_value_is_planned_or_refused_naming_a_key(config):
    check_and_plan(config)


@FUZZ
@given(changed())
def test_the_tiny_sweep_with_keys_changed_is_planned_or_refused_naming_a_key(config):
    check_and_plan(config)


@FUZZ
@given(shaped())
def test_sweeps_near_their_bounds_are_planned_or_refused_naming_a_key(config):
    check_and_plan(config)


def test_the_keys_named_resolve():
    config = {"sweep": {"grid": [4, "big"]}, 1: {None: 2}}
    assert resolves(config, "sweep.grid[1]") and resolves(config, "(top level)")
    assert resolves(config, "[1].None")
    assert not resolves(config, "sweep.grid[2]") and not resolves(config, "model")
    assert named_key("invalid config: sweep.grid[0]: 0 is less than 2") == "sweep.grid[0]"


@settings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(st.one_of(changed(), shaped(), anything))
def test_memsweep_plan_exits_0_or_2_without_a_traceback(tmp_path_factory, config):
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [str(BIN / "memsweep"), "plan", str(path)]
    if not (BIN / "memsweep").exists():
        command = [sys.executable, "-m", "memsweep.cli", "plan", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    if result.returncode == 0:
        assert result.stdout.startswith("memsweep plan: ")
    else:
        assert result.stderr.startswith("memsweep plan: error: "), result.stderr
