"""The plan on small made-up configs: statuses and reasons, the budget, paths, predictions;
and what is derived from the Job: the config schema, the CLI's options, the table columns."""

from __future__ import annotations

import copy
import re

import pyarrow as pa
import pytest

from memsweep import agents
from memsweep.cli import build_parser
from memsweep.plan import config, predict, sweep
from memsweep.plan.jobs import (
    CORE_AXES,
    MODEL_SETTINGS,
    SETTINGS,
    SHARING,
    Job,
    unsupported_reason,
)
from memsweep.results.schema import CONFIG_FIELDS
from memsweep.world.gridworld import NOISE_KINDS
from memsweep.world.storage import DTYPES, FORMATS

from .conftest import ROOT

SMALL = {
    "sweep": {
        "backend": ["pymdp-numpy", "lean"],
        "storage": ["dense", "csr"],
        "dtype": ["float64", "float16"],
        "grid": [3, 5],
        "agents": [1],
        "sharing": ["shared"],
        "policy_len": [1],
    },
    "model": {"steps": 4, "repeats": 1},
    "budget": {"max_job_mb": 4000},
}


def small(**changes) -> dict:
    """SMALL with sections' keys replaced: ``small(sweep={"grid": [4]})``."""
    config = copy.deepcopy(SMALL)
    for section, values in changes.items():
        config[section].update(values)
    return config


def by_status(planned) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in planned:
        counts[p.status] = counts.get(p.status, 0) + 1
    return counts


# The plan -------------------------------------------------------------------------------


def test_counts_by_status():
    planned = sweep.plan(small())
    assert len(planned) == 2 * 2 * 2 * 2
    # pymdp-numpy: dense float64 runs (2 grids); csr (2 dtypes) and dense float16 do not.
    # lean: float64 runs, dense and csr (2 grids); float16 does not.
    assert by_status(planned) == {sweep.RUN: 2 + 4, sweep.UNSUPPORTED: 6 + 4}


def test_reasons_are_the_backends_own():
    planned = sweep.plan(small())
    numpy, lean = agents.get("pymdp-numpy"), agents.get("lean")
    for p in planned:
        if p.status != sweep.UNSUPPORTED:
            assert p.reason is None and p.path
            continue
        backend = numpy if p.job.backend == "pymdp-numpy" else lean
        # The storage table answers first, then the dtype table.
        expected = backend.storages[p.job.storage] or backend.dtypes[p.job.dtype]
        assert p.reason == expected
        assert p.row()["path"] is None
    summary = sweep.summary(planned)
    assert f"unsupported ×4: {numpy.storages['csr']}" in summary


def test_budget_marks_jobs_over_it():
    planned = sweep.plan(small(sweep={"grid": [3, 20]}, budget={"max_job_mb": 200}))
    over = [p for p in planned if p.status == sweep.OVER_BUDGET]
    # Only lean (120 MB import) fits under 200 MB; pymdp-numpy's import alone is 260 MB.
    assert {p.job.backend for p in over} == {"pymdp-numpy"}
    assert {p.job.backend for p in planned if p.status == sweep.RUN} == {"lean"}
    for p in over:
        assert p.predicted_mb > 200
        assert re.fullmatch(r"predicted \d+ MB > budget.max_job_mb 200 MB", p.reason)


def test_a_budget_below_every_job_is_an_error():
    with pytest.raises(config.ConfigError, match="budget.max_job_mb: 100 MB is below every"):
        sweep.plan(small(budget={"max_job_mb": 100}))


def test_nothing_supported_is_an_error_naming_the_reasons():
    with pytest.raises(config.ConfigError, match="no configuration is supported") as error:
        sweep.plan(small(sweep={"backend": ["pymdp-numpy"], "storage": ["csr"]}))
    assert "dense numpy arrays only" in str(error.value)


def test_plan_checks_the_config_and_fills_defaults():
    raw = small()
    del raw["model"]["steps"]
    planned = sweep.plan(raw)
    assert {p.job.steps for p in planned} == {SETTINGS["steps"].default}
    with pytest.raises(config.ConfigError, match="sweep.grid"):
        sweep.plan(small(sweep={"grid": [1]}))


def test_folder_axes_and_paths():
    planned = sweep.plan(small(sweep={"noise_kind": ["local", "uniform"]}))
    axes = planned[0].axes
    # A promoted model setting is one more folder level, after the core axes' folders.
    assert sweep.folder_axes(axes) == (*CORE_AXES[:-1], "noise_kind")
    job = next(p for p in planned if p.status == sweep.RUN).job
    assert sweep.measurement_path(job, axes) == (
        f"results/measurements/backend={job.backend}/storage={job.storage}/dtype={job.dtype}/"
        f"grid={job.grid}/agents=1/sharing=shared/noise_kind={job.noise_kind}/"
        "policy_len=1.parquet"
    )
    assert sweep.reference_path(job, axes) == (
        f"results/reference/grid={job.grid}/noise_kind={job.noise_kind}/policy_len=1.npz"
    )
    # The order of the axes in a config moves nothing.
    reordered = small()
    reordered["sweep"] = {"noise_kind": ["local", "uniform"], **reversed_dict(SMALL["sweep"])}
    assert {p.path for p in sweep.plan(reordered)} == {p.path for p in planned}


def reversed_dict(mapping: dict) -> dict:
    return dict(reversed(list(mapping.items())))


# Predictions ----------------------------------------------------------------------------

# Predicted MB from before the terms moved onto the backends: they must not change.
PREDICTED = [
    (("pymdp-numpy", "dense", "float64", 20, 10, "private", 1, "local"), 360.37119999999993),
    (("pymdp-numpy", "dense", "float32", 3, 1, "shared", 2, "uniform"), 260.01173600000004),
    (("pymdp-jax", "dense", "float64", 20, 10, "shared", 1, "local"), 568.9984),
    (("pymdp-jax", "dense", "float16", 20, 1, "private", 2, "local"), 440.096),
    (("pymdp-jax", "csr", "float32", 3, 10, "shared", 1, "uniform"), 420.04476000000005),
    (("lean", "csr", "float32", 20, 10, "shared", 1, "local"), 120.50882399999999),
    (("lean", "coo", "float64", 20, 10, "private", 2, "local"), 123.65440000000001),
    (("lean", "csr", "float64", 20, 1, "private", 1, "uniform"), 124.01284799999999),
    (("lean", "dense", "float32", 20, 10, "private", 1, "local"), 170.40959999999998),
]


@pytest.mark.parametrize(("settings", "expected"), PREDICTED, ids=lambda v: str(v))
def test_prediction_per_backend_is_unchanged(settings, expected):
    *axes, noise_kind = settings
    assert predict.predict_mb(Job(*axes, noise_kind=noise_kind)) == expected


def test_prediction_terms_by_hand():
    # G=10: N=100. lean csr float32 local noise: A has 5N entries, each B 2N;
    # (entries × (4 + 4) + 101 pointers × 4) a matrix, plus C and D (2N × 4).
    job = Job("lean", "csr", "float32", 10, 2, "private", 1)
    n = 100
    model = ((5 * n + 5 * 2 * n) * 8 + 6 * 101 * 4 + 2 * n * 4) / 1e6
    assert predict.model_mb(job) == pytest.approx(model)
    beliefs = 2 * (5 * 2 + 4) * n * 8 / 1e6
    assert predict.predict_mb(job) == pytest.approx(120 + 3 * model + beliefs)
    # pymdp-jax: a model copy per agent in both layouts, a B slice per policy and agent.
    jax = Job("pymdp-jax", "dense", "float32", 10, 2, "shared", 1)
    model = predict.model_mb(jax)
    assert predict.predict_mb(jax) == pytest.approx(
        420 + 3 * model + beliefs + 2 * 5 * n * n * 4 / 1e6
    )


def test_import_term_is_the_backends():
    for name in agents.names():
        assert predict.import_mb(name) == agents.get(name).import_mb
    assert predict.import_mb("pymdp-torch") == agents.Backend.import_mb  # the default guess
    assert predict.predict_mb(Job("pymdp-torch", "dense", "float64", 3, 1, "shared", 1)) > 0


# One supportability check --------------------------------------------------------------


def test_unsupported_reason():
    assert unsupported_reason(Job("lean", "csr", "float32", 3, 1, "shared", 1)) is None
    numpy = Job("pymdp-numpy", "coo", "float32", 3, 1, "shared", 1)
    assert unsupported_reason(numpy) == agents.get("pymdp-numpy").storages["coo"]
    unknown = unsupported_reason(Job("pymdp-torch", "dense", "float64", 3, 1, "shared", 1))
    assert "unknown backend 'pymdp-torch'" in unknown and "lean" in unknown
    odd = unsupported_reason(Job("lean", "ell", "float64", 3, 1, "shared", 1))
    assert "unknown storage 'ell'" in odd


# The Job is the one definition ---------------------------------------------------------


def test_job_checks_its_settings_from_their_declarations():
    for settings, words in [
        ({"grid": 1}, "grid must be at least 2"),
        ({"grid": 201}, "grid must be at most 200"),
        ({"policy_len": 7}, "policy_len must be at most 6"),
        ({"steps": 1}, "steps must be at least 2"),
        ({"sharing": "pooled"}, "sharing must be one of ('private', 'shared')"),
        ({"obs_noise": 1.0}, "obs_noise must be below 1"),
        ({"noise_kind": "gaussian"}, "noise_kind must be one of"),
    ]:
        base = dict(backend="lean", storage="dense", dtype="float64", grid=3, agents=1)
        base.update(sharing="shared", policy_len=1)
        with pytest.raises(ValueError, match=re.escape(words)):
            Job(**{**base, **settings})


def test_config_schema_is_made_from_the_code():
    rules = config.schema()
    axes = rules["properties"]["sweep"]
    assert axes["required"] == list(CORE_AXES)
    assert list(axes["properties"]) == [*CORE_AXES, *MODEL_SETTINGS]
    assert axes["properties"]["backend"]["items"] == {"enum": list(agents.names())}
    assert axes["properties"]["storage"]["items"] == {"enum": list(FORMATS)}
    assert axes["properties"]["dtype"]["items"] == {"enum": list(DTYPES)}
    assert axes["properties"]["sharing"]["items"] == {"enum": list(SHARING)}
    assert axes["properties"]["noise_kind"]["items"] == {"enum": list(NOISE_KINDS)}
    assert axes["properties"]["grid"]["items"] == {"type": "integer", "minimum": 2, "maximum": 200}
    model = rules["properties"]["model"]["properties"]
    assert list(model) == list(MODEL_SETTINGS)
    for name in MODEL_SETTINGS:
        assert model[name]["default"] == SETTINGS[name].default
    assert model["obs_noise"]["type"] == "number"


def test_cli_has_an_option_per_setting():
    parser = build_parser()
    args = parser.parse_args(["measure", "--out", "x.parquet", "--policy-len", "2"])
    assert all(hasattr(args, name) for name in SETTINGS)
    assert args.policy_len == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["measure", "--out", "x.parquet", "--backend", "pymdp-torch"])
    with pytest.raises(SystemExit):
        parser.parse_args(["measure", "--out", "x.parquet", "--noise-kind", "gaussian"])


def test_config_columns_are_unchanged():
    expected = [
        ("config_id", pa.string()),
        ("backend", pa.string()),
        ("storage", pa.string()),
        ("dtype", pa.string()),
        ("grid", pa.int64()),
        ("states", pa.int64()),
        ("agents", pa.int64()),
        ("sharing", pa.string()),
        ("policy_len", pa.int64()),
        ("world", pa.string()),
        ("obs_noise", pa.float64()),
        ("noise_kind", pa.string()),
        ("move_success", pa.float64()),
        ("steps", pa.int64()),
        ("repeats", pa.int64()),
        ("seed", pa.int64()),
        ("malloc_arena_max", pa.int64()),
        ("malloc_mmap_threshold", pa.int64()),
        ("layout", pa.string()),
    ]
    assert pa.schema(CONFIG_FIELDS) == pa.schema([pa.field(n, t) for n, t in expected])
    job = Job("lean", "csr", "float32", 3, 1, "shared", 1)
    assert set(job.columns()) | {"layout"} == {f.name for f in CONFIG_FIELDS}


def test_config_readme_documents_every_setting():
    text = (ROOT / "config" / "README.md").read_text()
    for name in (*SETTINGS, "max_job_mb"):
        assert f"| `{name}` |" in text, name


def test_cli_settings_from_path_then_set_then_options():
    from memsweep.cli import job_from_args

    folders = "r/backend=lean/storage=csr/dtype=float32/grid=4/agents=2/sharing=shared/seed=5"
    parser = build_parser()

    def job(*options):
        command = ["measure", "--from-path", "--out", f"{folders}/policy_len=1.parquet"]
        return job_from_args(parser.parse_args([*command, *options]))

    assert (job().grid, job().seed, job().policy_len) == (4, 5, 1)
    assert job("--set", "seed=6").seed == 6
    assert job("--set", "seed=6", "--seed", "7").seed == 7
    assert job("--grid", "5").grid == 5


# `also`: more sweeps beside the main one -----------------------------------------------
def test_an_also_sweep_adds_its_own_combinations_and_nothing_twice():
    scaling = small(sweep={"storage": ["dense"], "dtype": ["float64"], "grid": [3, 5, 7]})
    with_fixes = {**copy.deepcopy(scaling), "also": [{"grid": [7], "storage": ["dense", "csr"]}]}
    before = {p.job.config_id: p for p in sweep.plan(copy.deepcopy(scaling))}
    after = {p.job.config_id: p for p in sweep.plan(with_fixes)}
    added = {
        (p.job.backend, p.job.storage, p.job.grid) for i, p in after.items() if i not in before
    }
    # Two backends × csr at grid 7 only; dense at grid 7 was planned by the main sweep.
    assert added == {("pymdp-numpy", "csr", 7), ("lean", "csr", 7)}
    assert set(before) <= set(after) and len(after) == len(before) + 2
    assert after[next(iter(before))].path == next(iter(before.values())).path


def test_an_also_sweep_may_only_replace_the_sweeps_axes():
    bad = {**small(), "also": [{"grid": [4]}, {"obs_noise": [0.2], "seed": [1]}]}
    with pytest.raises(config.ConfigError) as raised:
        config.check(bad)
    message = str(raised.value)
    assert "also[1].obs_noise: not an axis of sweep" in message
    assert "also[1].seed: not an axis of sweep" in message
    assert "also[0]" not in message


@pytest.mark.parametrize(
    ("also", "expected"),
    [
        ([{}], "also[0]: {} should be non-empty"),
        ([{"grid": [1]}], "also[0].grid[0]: 1 is less than the minimum of 2"),
        ({"grid": [4]}, "also: {'grid': [4]} is not of type 'array'"),
        ([], "also: [] should be non-empty"),
    ],
)
def test_an_also_sweep_is_checked_like_the_sweep(also, expected):
    with pytest.raises(config.ConfigError, match=re.escape(expected)):
        config.check({**small(), "also": also})


def test_the_default_config_measures_each_fix_beside_its_base():
    """Every one-axis fix (storage, dtype, sharing) of the default sweep's largest
    configuration is planned for every backend that can run it."""
    planned = sweep.plan(config.load(ROOT / "config" / "config.yaml"))
    ran = {(p.job.backend, p.job.storage, p.job.dtype, p.job.grid, p.job.agents, p.job.sharing)
           for p in planned if p.status == sweep.RUN}  # fmt: skip
    grids = sorted({p.job.grid for p in planned})
    assert len(grids) >= 4  # a scaling fit needs four points
    for backend in ("pymdp-numpy", "pymdp-jax", "lean"):
        base = (backend, "dense", "float64", grids[-1], 10, "private")
        assert base in ran
        for fix in ((1, "csr"), (2, "float32"), (5, "shared")):
            variant = (*base[: fix[0]], fix[1], *base[fix[0] + 1 :])
            planned_variant = [p for p in planned if (p.job.backend, p.job.storage, p.job.dtype,
                               p.job.grid, p.job.agents, p.job.sharing) == variant]  # fmt: skip
            assert planned_variant, variant  # run, or unsupported with its reason
            assert planned_variant[0].status == sweep.RUN or planned_variant[0].reason
