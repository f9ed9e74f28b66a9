"""Hotspots: what holds the memory, ranked by measured bytes, each with a measured fix.

A *consumer* is one thing that holds memory, named by the rows that measure it
(phase, operation, metric): an array of the model, the agents, the per-call
temporaries of an operation, the import, the growth over steps. Each probe
ranks the consumers on its own, because figures of different probes are never
compared: tracemalloc is blind to XLA's buffers, and VmHWM misses a temporary
that reuses heap pages already resident. A hotspot's rank is its best rank
under any probe.

A fix is a measured configuration that differs from the hotspot's worst
configuration in one axis only (backend, storage, dtype or sharing); its saving
is the difference of the two configurations' figures under the same probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from memsweep.results.schema import CONFIG_FIELDS

# Every column that names a configuration (``layout`` is an outcome, not a setting).
CONFIG = [f.name for f in CONFIG_FIELDS if f.name != "layout"]
FIX_AXES = ("backend", "storage", "dtype", "sharing")
# Probes that rank consumers, in the order that breaks ties between equal ranks: the
# kernel's peak (what a job's memory limit sees), its anonymous pages (which other
# processes' library mappings cannot move), its unique pages, then the allocator's.
# ``nbytes`` (exact array sizes) sees the model's arrays only; it breaks the model down
# instead of ranking four arrays against whole phases.
PROBES = ("vmhwm", "rss_anon", "psutil_uss", "tracemalloc")
# Backends whose memory a probe cannot see: pymdp-jax keeps its arrays in XLA buffers,
# which bypass Python's allocator. A saving that crosses such a backend is not computed.
BLIND = {"tracemalloc": ("pymdp-jax",)}  # to be read from agents.get(b).blind_probes
# A fix must save at least this share of the hotspot under its ranking probe: smaller
# differences are within the run-to-run spread of the process probes.
FIX_SHARE = 0.05
# A configuration "has" a hotspot where it measures at least this share of the worst one.
WHERE_SHARE = 0.25
# Under each probe, a consumer ranks only if its worst figure is at least this share of
# that probe's largest consumer: a probe that sees few consumers (nbytes sees the four
# model arrays) would otherwise rank kilobyte arrays beside hundred-megabyte imports.
RANK_SHARE = 0.01
PRECISION = ("max_abs_qs_error", "max_kl_qs", "action_agreement")
# What "the whole configuration" means under each probe family. Resident: the import
# (the process's unique pages it added) plus the kernel's peak above the post-import
# baseline. Traced: the traced peak above that baseline (the import is not traced).
FOOTPRINTS = {
    "traced": (("summary", "all", "peak_bytes", "tracemalloc"),),
    "resident": (("import", "load", "resident_bytes", "psutil_uss"),
                 ("summary", "all", "peak_bytes", "vmhwm")),
}  # fmt: skip


@dataclass(frozen=True)
class Consumer:
    """One kind of memory holder and the metric each probe measures it with."""

    key: str
    kind: str
    what: str  # ``{operation}`` is filled in
    phase: str
    metrics: dict[str, str]
    operation: str | None = None  # None: one consumer per operation found in the data
    per_agent: bool = False  # the figure covers every agent of the configuration
    # Axes a fix may change: only those that act on this holder. Elsewhere a difference
    # between two runs is the probe's run-to-run spread, not a saving.
    fix_axes: tuple[str, ...] = ("backend", "storage", "dtype", "sharing")

    def describe(self, operation: str) -> str:
        return self.what.format(operation=operation)


CONSUMERS = (
    Consumer("model_built", "arrays of the model as built",
             "the model as the backend builds it (A, B, C, D and any conversion it keeps)",
             "build", {"tracemalloc": "growth_bytes", "rss_anon": "growth_bytes",
                       "psutil_uss": "growth_bytes", "vmhwm": "call_peak_bytes"},
             operation="model"),
    Consumer("agents", "per-agent copy",
             "the agents: each agent's state, and its own copy of the model where "
             "sharing=private", "build",
             {"tracemalloc": "growth_bytes", "rss_anon": "growth_bytes",
              "psutil_uss": "growth_bytes", "vmhwm": "call_peak_bytes"},
             operation="agents", per_agent=True),
    Consumer("call_temporaries", "per-call temporary",
             "temporaries of one {operation} call over all agents (peak above the call's start)",
             "step", {"tracemalloc": "call_peak_bytes", "vmhwm": "call_peak_bytes"},
             per_agent=True),
    Consumer("first_call", "fixed compile cost",
             "the first {operation} call: compilation (JAX) and first-use caches",
             "compile", {"tracemalloc": "call_peak_bytes", "vmhwm": "call_peak_bytes"},
             per_agent=True),
    Consumer("import", "fixed import cost",
             "importing the backend's libraries (paid once per process)",
             "import", {"tracemalloc": "traced_bytes", "rss_anon": "anon_bytes",
                        "psutil_uss": "resident_bytes"},
             operation="load", fix_axes=("backend",)),
    Consumer("growth", "growth over steps",
             "memory gained per 100 steps of the first repeat (least-squares slope)",
             "growth", {"tracemalloc": "traced_growth_per_100_steps_bytes",
                        "rss_anon": "anon_growth_per_100_steps_bytes",
                        "psutil_uss": "resident_growth_per_100_steps_bytes"},
             operation="step", per_agent=True),
    Consumer("retained", "retained after cleanup",
             "memory still held above the post-import baseline after the agents are dropped",
             "cleanup", {"tracemalloc": "retained_bytes", "rss_anon": "retained_bytes",
                         "psutil_uss": "retained_bytes"},
             operation="drop_agents"),
)  # fmt: skip


# Selecting rows ---------------------------------------------------------------------


def selector(phase, operation, metric, probe) -> dict:
    return {"phase": phase, "operation": operation, "metric": metric, "probe": probe}


def selector_text(sel: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sel.items() if v is not None) + " status=ok"


def rows(frame: pd.DataFrame, sel: dict) -> pd.DataFrame:
    """The ok rows a selector names (``operation`` None: any operation)."""
    mask = frame.status == "ok"
    for key, value in sel.items():
        if value is not None:
            mask &= frame[key] == value
    return frame[mask]


def per_config(frame: pd.DataFrame, sel: dict) -> pd.DataFrame:
    """One row per configuration: its config columns, the median value and the row count.

    The median runs over steps and repeats, so one slow or noisy call does not set a figure.
    """
    chosen = rows(frame, sel)
    columns = [c for c in CONFIG if c in frame]
    if chosen.empty:
        return pd.DataFrame(columns=[*columns, "value", "rows"])
    values = chosen.groupby("config_id").value.agg(value="median", rows="size")
    configs = chosen.drop_duplicates("config_id").set_index("config_id")[columns[1:]]
    return configs.join(values).reset_index()


def configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """Every configuration with at least one ok row: one row each, config columns only."""
    columns = [c for c in CONFIG if c in frame]
    return frame[frame.status == "ok"].drop_duplicates("config_id")[columns].reset_index(drop=True)


def value_of(table: pd.DataFrame, config_id: str) -> float | None:
    hit = table.loc[table.config_id == config_id, "value"]
    return None if hit.empty or pd.isna(hit.iloc[0]) else float(hit.iloc[0])


def footprint(frame: pd.DataFrame, family: str) -> pd.DataFrame:
    """Per configuration: import + peak above the post-import baseline, in one probe family."""
    total = None
    for parts in FOOTPRINTS[family]:
        part = per_config(frame, selector(*parts))[["config_id", "value"]]
        total = part if total is None else total.merge(part, on="config_id")
        if "value_x" in total:
            total = total.assign(value=total.value_x + total.value_y)[["config_id", "value"]]
    return total


def footprint_text(family: str) -> str:
    parts = FOOTPRINTS[family]
    return " + ".join(f"{p[0]}/{p[2]} [{p[3]}]" for p in parts)


# Scaling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """log(value) = exponent·log(x) + a per-group intercept, by least squares."""

    exponent: float
    low: float
    high: float
    points: int
    groups: int
    dropped: int  # values <= 0, which have no logarithm

    def text(self) -> str:
        if np.isnan(self.low):
            return f"{self.exponent:.2f} (no CI: {self.points} points)"
        return f"{self.exponent:.2f} [{self.low:.2f}, {self.high:.2f}]"


def fit_exponent(table: pd.DataFrame, x: str, by: list[str] | None = None) -> Fit | None:
    """Log-log slope of ``value`` against ``x``, 95 % CI from the t distribution.

    Rows are grouped by ``by`` (the other axes that vary): each group gets its own
    intercept, so the slope is only estimated from changes of ``x`` within a group.
    None when no group holds two distinct ``x``.
    """
    data = table[[x, "value", *(by or [])]].dropna()
    positive = data[data.value > 0]
    dropped = len(data) - len(positive)
    groups = positive.groupby(by) if by else [((), positive)]
    xs, ys, used = [], [], 0
    for _, group in groups:
        if group[x].nunique() < 2:
            continue
        lx, ly = np.log(group[x].to_numpy(float)), np.log(group.value.to_numpy(float))
        xs.append(lx - lx.mean())
        ys.append(ly - ly.mean())
        used += 1
    if not used:
        return None
    lx, ly = np.concatenate(xs), np.concatenate(ys)
    # Centred within groups, the data's overall means are zero: the least-squares line
    # passes through the origin and its slope is the pooled within-group slope.
    slope = float(stats.linregress(lx, ly).slope)
    dof = len(lx) - used - 1
    if dof < 1:
        return Fit(slope, np.nan, np.nan, len(lx), used, dropped)
    residual = ly - slope * lx
    stderr = np.sqrt(residual @ residual / dof / (lx @ lx))
    half = stats.t.ppf(0.975, dof) * stderr
    return Fit(slope, slope - half, slope + half, len(lx), used, dropped)


def slice_of(table: pd.DataFrame, base: pd.Series, free: tuple[str, ...]) -> pd.DataFrame:
    """Configurations equal to ``base`` in every config column except those in ``free``."""
    fixed = [c for c in CONFIG if c in table and c not in (*free, "config_id", "states")]
    mask = np.ones(len(table), bool)
    for column in fixed:
        mask &= (table[column] == base[column]).to_numpy()
    return table[mask]


def scaling(table: pd.DataFrame, base: pd.Series) -> dict[str, Fit | None]:
    """Exponents in N (states) and in agents, in the slice of ``base``'s other settings."""
    near = slice_of(table, base, ("grid", "agents"))
    return {
        "states": fit_exponent(near, "states", ["agents"]),
        "agents": fit_exponent(near, "agents", ["states"]),
    }


# Fixes ------------------------------------------------------------------------------


def neighbours(configs: pd.DataFrame, base: pd.Series) -> pd.DataFrame:
    """Configurations that differ from ``base`` in exactly one of :data:`FIX_AXES`."""
    found = []
    for axis in FIX_AXES:
        near = slice_of(configs, base, (axis,))
        found.append(near[near[axis] != base[axis]].assign(axis=axis))
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


@dataclass
class Saving:
    """``base`` against ``variant`` under one probe (positive: the variant holds less)."""

    probe: str
    base: float | None
    variant: float | None
    note: str = ""  # how the variant's figure was read, where not like the base's

    @property
    def bytes(self) -> float | None:
        if self.base is None or self.variant is None:
            return None
        return self.base - self.variant

    @property
    def fraction(self) -> float | None:
        saved = self.bytes
        return None if saved is None or not self.base else saved / self.base


@dataclass
class Fix:
    axis: str
    old: str
    new: str
    variant: str  # config_id
    saving: dict[str, Saving]  # probe -> the consumer's saving
    footprint: dict[str, Saving]  # family -> the whole configuration's saving
    precision: dict[str, tuple[float | None, float | None]]  # metric -> (base, variant)
    step_seconds: tuple[float | None, float | None]
    agents: int

    def label(self) -> str:
        return f"{self.axis} {self.old} → {self.new}"


@dataclass
class Hotspot:
    consumer: Consumer
    operation: str
    rank: int
    ranks: dict[str, int]  # probe -> rank within that probe
    probe: str  # the probe it ranks best under: its fix is chosen by this probe's figure
    worst: dict[str, pd.Series]  # probe -> the worst configuration's row (value, rows, axes)
    selectors: dict[str, dict]
    where: dict[str, list]
    fits: dict[str, dict[str, Fit | None]]  # probe -> {"states": Fit, "agents": Fit}
    fit_configs: list[str]
    fixes: list[Fix] = field(default_factory=list)
    unavailable: list[tuple[str, str, str]] = field(default_factory=list)  # axis, value, reason

    @property
    def what(self) -> str:
        return self.consumer.describe(self.operation)

    @property
    def base(self) -> pd.Series:
        return self.worst[self.probe]

    @property
    def fix(self) -> Fix | None:
        """The one-axis variant that saves most under the ranking probe, if any saves."""
        saving = [f for f in self.fixes if (f.saving[self.probe].fraction or 0) >= FIX_SHARE]
        return max(saving, key=lambda f: f.saving[self.probe].bytes, default=None)


class Tables:
    """Per-configuration figures of one measurement table, computed once each."""

    def __init__(self, frame: pd.DataFrame, plan: pd.DataFrame | None = None):
        self.frame = frame
        self.plan = plan
        self.configs = configurations(frame)
        self._cache: dict[tuple, pd.DataFrame] = {}

    def per_config(self, sel: dict) -> pd.DataFrame:
        key = tuple(sel.items())
        if key not in self._cache:
            self._cache[key] = per_config(self.frame, sel)
        return self._cache[key]

    def footprint(self, family: str) -> pd.DataFrame:
        key = ("footprint", family)
        if key not in self._cache:
            self._cache[key] = footprint(self.frame, family)
        return self._cache[key]

    def value(self, sel: dict, config_id: str) -> float | None:
        return value_of(self.per_config(sel), config_id)


def _operations(frame: pd.DataFrame, consumer: Consumer) -> list[str]:
    if consumer.operation is not None:
        return [consumer.operation]
    chosen = frame[(frame.phase == consumer.phase) & (frame.status == "ok")]
    return sorted(chosen.operation.dropna().unique())


def _variant_value(tables: Tables, sel: dict, config_id: str) -> tuple[float | None, str]:
    """The variant's figure; for an operation it does not have (another backend), the
    sum over the operations it has in that phase: JAX's one ``step`` does the work of
    numpy's ``infer_states`` + ``infer_policies`` + ``sample_action``."""
    value = tables.value(sel, config_id)
    if value is not None or sel["operation"] is None:
        return value, ""
    chosen = rows(tables.frame, {**sel, "operation": None})
    chosen = chosen[chosen.config_id == config_id]
    if chosen.empty:
        return None, ""
    per_operation = chosen.groupby("operation").value.median()
    return float(per_operation.sum()), f"variant: sum over its {', '.join(per_operation.index)}"


def _blind(probe: str, *configs: pd.Series) -> str:
    """Why ``probe`` cannot compare these configurations, or ''."""
    unseen = sorted({c["backend"] for c in configs} & set(BLIND.get(probe, ())))
    return f"{probe} cannot see {', '.join(unseen)}'s XLA buffers" if unseen else ""


def _fix(tables: Tables, hotspot_sels: dict, base: pd.Series, variant: pd.Series) -> Fix:
    saving = {}
    for probe, sel in hotspot_sels.items():
        if _blind(probe, base, variant):
            saving[probe] = Saving(probe, None, None, _blind(probe, base, variant))
            continue
        value, note = _variant_value(tables, sel, variant.config_id)
        saving[probe] = Saving(probe, tables.value(sel, base.config_id), value, note)
    whole = {}
    for family, parts in FOOTPRINTS.items():
        blind = next(filter(None, (_blind(part[3], base, variant) for part in parts)), "")
        whole[family] = (
            Saving(family, None, None, blind)
            if blind
            else Saving(
                family,
                value_of(tables.footprint(family), base.config_id),
                value_of(tables.footprint(family), variant.config_id),
            )
        )
    precision = {}
    for metric in PRECISION:
        sel = selector("precision", "step", metric, "reference_trace")
        precision[metric] = (
            tables.value(sel, base.config_id),
            tables.value(sel, variant.config_id),
        )
    seconds = selector("summary", "all", "step_seconds", "perf_counter")
    return Fix(
        axis=variant["axis"],
        old=str(base[variant["axis"]]),
        new=str(variant[variant["axis"]]),
        variant=variant.config_id,
        saving=saving,
        footprint=whole,
        precision=precision,
        step_seconds=(
            tables.value(seconds, base.config_id),
            tables.value(seconds, variant.config_id),
        ),
        agents=int(base.agents),
    )


def _unavailable(plan: pd.DataFrame | None, base: pd.Series, measured: pd.DataFrame) -> list:
    """One-axis variants the plan did not run (unsupported, over budget), with the reason."""
    if plan is None or plan.empty:
        return []
    out = []
    for axis in FIX_AXES:
        near = slice_of(plan, base, (axis,))
        near = near[(near[axis] != base[axis]) & ~near.config_id.isin(measured.config_id)]
        for _, row in near.iterrows():
            reason = row.get("reason") if row.status != "run" else None
            out.append((axis, str(row[axis]), str(reason or f"planned ({row.status}), no ok rows")))
    return out


def _where(table: pd.DataFrame, worst: float) -> dict[str, list]:
    matters = table[table.value >= WHERE_SHARE * worst]
    return {
        axis: sorted(matters[axis].unique().tolist())
        for axis in ("backend", "storage", "dtype", "sharing", "grid", "agents")
    }


def model_arrays(frame: pd.DataFrame, config_id: str) -> dict[str, float]:
    """Exact bytes of each model array (A, B, C, D) of one configuration, largest first."""
    chosen = rows(frame, selector("model", None, "bytes", "nbytes"))
    chosen = chosen[chosen.config_id == config_id]
    sizes = chosen.groupby("operation").value.median().sort_values(ascending=False)
    return {str(k): float(v) for k, v in sizes.items()}


def ranking_probes(frame: pd.DataFrame) -> tuple[str, ...]:
    """The probes that rank: USS only in a run without rss_anon.

    USS moves by whole library mappings when other processes start or stop (the
    harness's own note), so one step of a job can gain hundreds of MB that no code of
    it allocated; RssAnon counts the same anonymous memory without that. USS figures
    are still shown beside the others.
    """
    if (frame.probe == "rss_anon").any():
        return tuple(p for p in PROBES if p != "psutil_uss")
    return PROBES


def rank(frame: pd.DataFrame, plan: pd.DataFrame | None = None) -> list[Hotspot]:
    """Every consumer with a positive figure, best rank first, each with its fixes."""
    tables = Tables(frame, plan)
    found: dict[tuple[str, str], dict] = {}
    for consumer in CONSUMERS:
        for operation in _operations(frame, consumer):
            for probe, metric in consumer.metrics.items():
                sel = selector(consumer.phase, operation, metric, probe)
                table = tables.per_config(sel)
                table = table[table.value.notna()]
                if table.empty or table.value.max() <= 0:
                    continue
                entry = found.setdefault((consumer.key, operation), {"consumer": consumer})
                entry.setdefault("tables", {})[probe] = table
                entry.setdefault("selectors", {})[probe] = sel
    # Ranks within each probe: the only place figures are ordered against each other.
    ranking = ranking_probes(frame)
    ranks: dict[tuple[str, str], dict[str, int]] = {key: {} for key in found}
    for probe in ranking:
        worst = sorted(
            (
                (e["tables"][probe].value.max(), key)
                for key, e in found.items()
                if probe in e["tables"]
            ),
            reverse=True,
        )
        ranked = [(v, key) for v, key in worst if worst and v >= RANK_SHARE * worst[0][0]]
        for position, (_, key) in enumerate(ranked, start=1):
            ranks[key][probe] = position
    hotspots = []
    for key, entry in found.items():
        if not ranks[key]:
            continue
        best = min(ranks[key].values())
        probe = next(p for p in ranking if ranks[key].get(p) == best)
        worst = {p: t.loc[t.value.idxmax()] for p, t in entry["tables"].items()}
        base = worst[probe]
        table = entry["tables"][probe]
        near = slice_of(table, base, ("grid", "agents"))
        hotspot = Hotspot(
            consumer=entry["consumer"],
            operation=key[1],
            rank=best,
            ranks=ranks[key],
            probe=probe,
            worst=worst,
            selectors=entry["selectors"],
            where=_where(table, base.value),
            fits={p: scaling(t, base) for p, t in entry["tables"].items()},
            fit_configs=sorted(near.config_id),
        )
        near = neighbours(tables.configs, base)
        near = near[near["axis"].isin(entry["consumer"].fix_axes)] if len(near) else near
        for _, variant in near.iterrows():
            hotspot.fixes.append(_fix(tables, entry["selectors"], base, variant))
        hotspot.unavailable = _unavailable(plan, base, tables.configs)
        hotspots.append(hotspot)
    order = {p: i for i, p in enumerate(PROBES)}
    # Equal ranks: first the hotspot more probes agree on, then by the probe order.
    hotspots.sort(
        key=lambda h: (h.rank, -sum(r == h.rank for r in h.ranks.values()), order[h.probe])
    )
    return hotspots


def config_label(row) -> str:
    """A configuration in words (item access: ``row.dtype`` would be the Series' own dtype)."""
    agents = int(row["agents"])
    return (
        f"{row['backend']}, {row['storage']}, {row['dtype']}, grid {row['grid']} "
        f"(N={row['states']}), {agents} agent{'s' if agents != 1 else ''}, {row['sharing']}"
    )


# Scaling and prediction tables ------------------------------------------------------

# The whole-configuration figures whose scaling the report tabulates.
SCALED = (
    ("summary", "all", "peak_bytes", "vmhwm"),
    ("summary", "all", "peak_bytes", "tracemalloc"),
    ("summary", "all", "model_bytes", "nbytes"),
    ("summary", "all", "agent_bytes", "tracemalloc"),
    ("summary", "all", "agent_bytes", "psutil_uss"),
    ("summary", "all", "step_seconds", "perf_counter"),
)


def scaling_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Exponents in N and in agents per slice (every setting but grid and agents fixed)."""
    out = []
    for parts in SCALED:
        table = per_config(frame, selector(*parts))
        table = table[table.value.notna()]
        if table.empty:
            continue
        slice_columns = [c for c in CONFIG if c in table and c not in SLICE_FREE]
        for _, group in table.groupby(slice_columns, dropna=False):
            first = group.iloc[0]
            fits = {
                "states": fit_exponent(group, "states", ["agents"]),
                "agents": fit_exponent(group, "agents", ["states"]),
            }
            out.append(
                {
                    **{axis: first[axis] for axis in FIX_AXES},
                    "quantity": f"{parts[2]} [{parts[3]}]",
                    "exponent_N": _fit_value(fits["states"]),
                    "N_CI": fits["states"].text() if fits["states"] else "not fitted",
                    "exponent_agents": _fit_value(fits["agents"]),
                    "agents_CI": fits["agents"].text() if fits["agents"] else "not fitted",
                    "configs": len(group),
                    "nonpositive": int((group.value <= 0).sum()),
                }
            )
    return pd.DataFrame(out)


SLICE_FREE = ("config_id", "grid", "states", "agents")


def _fit_value(fit: Fit | None) -> float:
    return np.nan if fit is None else round(fit.exponent, 3)


def prediction_table(frame: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """The plan's predicted MB beside the measured memory of each measured job.

    ``measured_mb``: import (USS growth while importing the backend) + the peak above
    the post-import baseline (VmHWM): what the job added to the interpreter it started
    in. The prediction's import term is a whole process's resident memory after the
    import, so it also holds the interpreter; ``above_import`` compares the rest only:
    the prediction less its import term against the measured peak above the baseline.
    """
    from memsweep.plan.predict import import_mb

    whole = footprint(frame, "resident").rename(columns={"value": "measured"})
    peak = per_config(frame, selector("summary", "all", "peak_bytes", "vmhwm"))
    peak = peak[["config_id", "value"]].rename(columns={"value": "peak"})
    keys = [*FIX_AXES, "grid", "agents", "config_id", "predicted_mb"]
    table = (
        plan[plan.status == "run"][keys].merge(whole, on="config_id").merge(peak, on="config_id")
    )
    table = table.assign(
        measured_mb=table.measured / 1e6,
        import_term_mb=table.backend.map(import_mb).astype(float),
    )
    table = table.assign(
        error=(table.predicted_mb - table.measured_mb) / table.measured_mb,
        predicted_above_import_mb=table.predicted_mb - table.import_term_mb,
        measured_above_import_mb=table.peak / 1e6,
    )
    table = table.assign(
        above_import_error=(table.predicted_above_import_mb - table.measured_above_import_mb)
        / table.measured_above_import_mb.where(table.measured_above_import_mb > 0),
    )
    return table.drop(columns=["measured", "peak"]).sort_values(list(FIX_AXES) + ["grid", "agents"])
