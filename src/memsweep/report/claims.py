"""The seed study's claims beside our closest comparable figure, each with a verdict.

The claims, the figure of ours each compares with and the tolerance rule live in
``data/seed_claims.yaml``; this module only selects rows, computes and judges.

A claim about a size (the seed's "20x20") is read two ways, since the seed's figures fit
a 20×20 *matrix* (20 states) as well as a 20×20 *grid* (400 states): each comparison is
made once per reading. Where no measured configuration has that many states, the figure
comes from a law ``a + b·N^k`` fitted over the sizes measured with every other setting
equal, with its 95 % interval, said to be interpolated or extrapolated. One final
verdict per claim follows the rule in :func:`verdicts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from memsweep.report.fits import K_RANGE, fit_law
from memsweep.report.formats import Unresolved
from memsweep.report.queries import (
    WORLD,
    Resolution,
    Tables,
    config_label,
    selector,
    slice_of,
)
from memsweep.world.base import DEFAULT_WORLD

CONFIRMED, REFUTED, NOT_COMPARABLE = "confirmed", "refuted", "not comparable"
MEASURED, INTERPOLATED, EXTRAPOLATED = "measured", "interpolated", "extrapolated"
# The readings of a claim's size G: a G×G grid (G² states), or G states (a G×G matrix).
READINGS = ("grid", "states")
LAW_POINTS = 3  # distinct sizes a law a + b·N^k needs


def load(path=None) -> list[dict]:
    """The claims file (the package's own unless ``path`` is given)."""
    if path is None:
        text = resources.files("memsweep.report").joinpath("data/seed_claims.yaml").read_text()
    else:
        text = Path(path).read_text()
    return yaml.safe_load(text)["claims"]


@dataclass
class Row:
    """One comparison: a claim, our figure, the verdict and why."""

    claim: str
    text: str
    claimed: str
    ours: float | None
    unit: str
    probe: str
    quantity: str
    config_id: str | None
    configuration: str
    spread: str
    rule: str
    verdict: str
    why: str
    reading: str = "—"  # the claim's size as our configurations read it
    comparison: int = 0  # which of the claim's comparisons (its place in the claims file)
    basis: str = "—"  # measured at that size, or interpolated/extrapolated by a law


def _where(table: pd.DataFrame, where: dict) -> pd.DataFrame:
    mask = np.ones(len(table), bool)
    for column, wanted in (where or {}).items():
        values = wanted if isinstance(wanted, list) else [wanted]
        mask &= table[column].isin(values).to_numpy()
    return table[mask]


def _distance(row: pd.Series, closest: dict) -> float:
    total = 0.0
    for column, target in (closest or {}).items():
        value = row[column]
        if isinstance(target, int | float) and not isinstance(target, bool):
            total += abs(math.log(float(value)) - math.log(float(target)))
        else:
            total += 0.0 if str(value) == str(target) else 1.0
    return total


def _nearest(table: pd.DataFrame, closest: dict) -> pd.Series:
    distances = table.apply(lambda row: _distance(row, closest), axis=1)
    # Ties go to the configuration with more agents and states: the larger measurement.
    order = pd.DataFrame({"d": distances, "a": -table.agents, "n": -table.states})
    return table.loc[order.sort_values(["d", "a", "n"], kind="stable").index[0]]


def _missing(frame: pd.DataFrame, where: dict) -> str:
    """Why nothing qualifies: the first ``where`` value our configurations never had."""
    for column, wanted in (where or {}).items():
        values = wanted if isinstance(wanted, list) else [wanted]
        have = sorted(frame[column].dropna().unique().tolist()) if column in frame else []
        if not set(map(str, values)) & set(map(str, have)):
            return f"no measured configuration has {column}={wanted} (measured: {have})"
    return "no measured configuration matches all of " + ", ".join(
        f"{k}={v}" for k, v in (where or {}).items()
    )


def _judge(ours: float, claimed: float | None, rule: dict) -> tuple[str, str]:
    if "relative" in rule:
        gap = abs(ours - claimed) / abs(claimed)
        ok = gap <= rule["relative"]
        ratio = ours / claimed if claimed else math.inf
        side = "within" if ok else "outside"
        return ok, f"ours is ×{ratio:.3g} the claim ({side} ±{rule['relative']:.0%})"
    if "absolute" in rule:
        gap = abs(ours - claimed)
        ok = gap <= rule["absolute"]
        return ok, f"|difference| {gap:.3g} ({'within' if ok else 'outside'} ±{rule['absolute']:g})"
    if "below" in rule:
        ok = ours < claimed
        return ok, f"ours is {'below' if ok else 'not below'} {claimed:g}"
    if "at_most" in rule:
        ok = ours <= rule["at_most"]
        return ok, f"ours {'≤' if ok else '>'} {rule['at_most']:g}"
    if "at_least" in rule:
        ok = ours >= rule["at_least"]
        return ok, f"ours {'≥' if ok else '<'} {rule['at_least']:g}"
    raise ValueError(f"unknown rule {rule}")


def _rule_text(rule: dict) -> str:
    key, value = next(iter(rule.items()))
    return {
        "relative": f"within ±{value:.0%}",
        "absolute": f"within ±{value:g}",
        "below": "ours below the claim",
        "at_most": f"ours ≤ {value:g}",
        "at_least": f"ours ≥ {value:g}",
    }[key]


def _figures(tables: Tables, compare: dict, probe: str) -> pd.DataFrame:
    """Per configuration: our figure for one comparison (before the claim's ``scale``)."""
    sel = selector(**{"operation": None, **compare["select"], "probe": probe})
    table = tables.per_config(sel)
    if compare["kind"] == "ratio":
        denominator = tables.per_config(compare["denominator"])[["config_id", "value", "resolved"]]
        table = table.merge(denominator, on="config_id", suffixes=("", "_den"))
        table = table.assign(
            value=table.value / (table.value_den * compare.get("denominator_scale", 1)),
            resolved=table.resolved.astype(bool) & table.resolved_den.astype(bool),
        )
    return table[table.value.notna()]


def reading_text(reading: str | None, size: int | None) -> str:
    if reading == "grid":
        return f"{size}×{size} grid (N={size * size})"
    if reading == "states":
        return f"{size} states"
    return "—"


def _target_states(reading: str | None, size: int | None) -> int | None:
    if reading is None:
        return None
    return size * size if reading == "grid" else size


def _law(states: pd.Series, values: pd.Series, target: int):
    """``a + b·N^k`` fitted to the values over the sizes (:func:`fits.fit_law`), at
    ``target`` states: the value, its 95 % interval (NaN with too few points for one) and
    the fit's exponent."""
    from memsweep.plan.fitted import Fit

    law = fit_law(states.to_numpy(float), values.to_numpy(float), K_RANGE)
    if law is None:
        return None
    fit = Fit(law.a, law.b, law.k, tuple(map(tuple, np.nan_to_num(law.covariance))),
              law.residual_variance, law.t, law.x_range)  # fmt: skip
    return fit.part(float(target)), law.k, fit.extrapolates(float(target))


def _by_law(
    base: Row, values: pd.DataFrame, chosen: pd.Series, target: int, compare, claimed
) -> Row:
    """The comparison at ``target`` states from a law fitted over the measured sizes of the
    closest configuration's slice (every other setting equal)."""
    same = slice_of(values, chosen, ("grid",))
    sizes = sorted(int(n) for n in same.states.unique())
    grids = "grids " + ", ".join(str(g) for g in sorted(same.grid.unique()))
    measured_at = f"grid {chosen['grid']} (N={chosen['states']})"
    base.configuration = config_label(chosen).replace(measured_at, grids)
    if len(sizes) < LAW_POINTS:
        base.why = (
            f"no configuration has N={target} states, and its slice has {len(sizes)} "
            f"size(s) (N={sizes}) for a law that needs {LAW_POINTS}"
        )
        return base
    law = _law(same.states, same.value, target)
    if law is None:
        base.why = f"no law a + b·N^k fits the figures over N={sizes}"
        return base
    part, k, beyond = law
    base.basis = EXTRAPOLATED if beyond else INTERPOLATED
    base.ours = part.mb
    interval = "" if np.isnan(part.low) else f" [{part.low:.3g}, {part.high:.3g}]"
    ok, why = _judge(part.mb, claimed, compare["rule"])
    base.verdict = CONFIRMED if ok else REFUTED
    base.why = (f"{why}; a + b·N^k (k = {k:.2f}) over N = {sizes}, {base.basis} to "
                f"N = {target}: {part.mb:.3g}{interval}")  # fmt: skip
    base.spread = f"{same.value.min():.3g} – {same.value.max():.3g} over {len(same)}"
    return base


def _compare(
    tables: Tables, claim: dict, compare: dict, probe: str, reading: str | None = None
) -> Row:
    kind, scale = compare["kind"], compare.get("scale", 1.0)
    as_fraction = compare.get("as") == "fraction"
    unit = "fraction" if as_fraction else claim["unit"]
    select = compare["select"]
    quantity = (
        f"{kind}: "
        + " ".join(f"{k}={v}" for k, v in select.items())
        + (f" [{probe}]" if probe else "")
        + (f", {next(iter(compare['change']))} {' → '.join(next(iter(compare['change'].values())))}"
           if kind == "saving" else "")
        + (f", per extra {compare['axis'][:-1]}" if kind == "marginal" else "")
    )  # fmt: skip
    claimed = claim.get("value")
    base = Row(
        claim=claim["id"],
        text=claim["text"],
        claimed="—" if claimed is None else f"{claimed:g} {claim['unit']}",
        ours=None,
        unit=unit,
        probe=probe,
        quantity=quantity,
        config_id=None,
        configuration="—",
        spread="—",
        rule=_rule_text(compare["rule"]),
        verdict=NOT_COMPARABLE,
        why="",
        reading=reading_text(reading, compare.get("size")),
    )
    target = _target_states(reading, compare.get("size"))
    table = _figures(tables, compare, probe)
    if table.empty:
        base.why = f"no ok rows for {quantity}"
        return base
    below = table[~table.resolved.astype(bool)]
    table = table[table.resolved.astype(bool)]  # a figure below resolution is no evidence
    resolution = below.resolution.max()
    below_why = f"below {probe}'s resolution" + (
        f" ({Unresolved(resolution)})" if pd.notna(resolution) else ""
    )
    if table.empty:
        base.why = f"every figure is {below_why}"
        return base
    where = dict(compare.get("where") or {})
    if kind == "saving":
        axis, (old, new) = next(iter(compare["change"].items()))
        where[axis] = old
    qualifying = _where(table, where)
    if qualifying.empty:
        base.why = _missing(table, where)
        return base
    values = _values(qualifying, table, compare)
    if values.empty:
        if kind == "saving":
            base.why = _missing(table, {axis: new})
            if (below[axis] == new).any():  # measured, but no evidence
                base.why = f"the {axis}={new} twins' figures are {below_why}"
            elif not base.why.startswith("no measured configuration has"):
                base.why = f"no qualifying configuration has its {axis}={new} twin measured"
        else:
            base.why = f"no qualifying configuration has two values of {compare.get('axis')}"
        return base
    values = values.assign(value=values.value * scale)
    # The seed study measured a grid world: the default world's figure where one was
    # measured (its law, below, is fitted within the chosen configuration's world).
    preferred = {WORLD: DEFAULT_WORLD} if WORLD in values else {}
    closest = {
        **preferred, **(compare.get("closest") or {}), **({"states": target} if target else {}),
    }  # fmt: skip
    chosen = _nearest(values, closest)
    if target is not None and int(chosen.states) != target:
        return _by_law(base, values, chosen, target, compare, claimed)
    if target is not None:
        base.basis = MEASURED
    ours = float(chosen.value)
    base.ours, base.config_id = ours, chosen.config_id
    base.configuration = config_label(chosen) + chosen.get("detail", "")
    if len(values) > 1:
        base.spread = f"{values.value.min():.3g} – {values.value.max():.3g} over {len(values)}"
    # The claim's setting we assumed (``closest``) must be met where ``exact`` says so:
    # a figure that scales with the grid says nothing about another grid.
    for column in compare.get("exact", []):
        target = compare["closest"][column]
        if str(chosen[column]) != str(target):
            base.verdict = NOT_COMPARABLE
            base.why = (
                f"the claim is for {column}={target}; the closest measured has "
                f"{column}={chosen[column]}"
            )
            return base
    ok, why = _judge(ours, claimed, compare["rule"])
    base.verdict = CONFIRMED if ok else REFUTED
    base.why = why
    return base


def _values(qualifying: pd.DataFrame, table: pd.DataFrame, compare: dict) -> pd.DataFrame:
    """The compared figure per qualifying configuration, for each kind of comparison."""
    kind = compare["kind"]
    if kind in ("value", "ratio"):
        return qualifying
    if kind == "saving":
        axis, (old, new) = next(iter(compare["change"].items()))
        out = []
        for _, row in qualifying.iterrows():
            near = slice_of(table, row, (axis,))
            variant = near[near[axis] == new]
            if variant.empty:
                continue
            saved = row.value - variant.value.iloc[0]
            if compare.get("as") == "fraction":
                saved = saved / row.value
            detail = f" vs {variant.config_id.iloc[0]}"
            out.append({**row.to_dict(), "value": saved, "detail": detail})
        return pd.DataFrame(out)
    if kind == "marginal":
        axis = compare["axis"]
        out, seen = [], set()
        for _, row in qualifying.iterrows():
            near = slice_of(table, row, (axis,))
            key = tuple(sorted(near.config_id))
            if near[axis].nunique() < 2 or key in seen:
                continue
            seen.add(key)
            slope = np.polyfit(near[axis].astype(float), near.value.astype(float), 1)[0]
            top = near.loc[near[axis].idxmax()]
            detail = f" (slope over {axis} {sorted(near[axis].unique().tolist())})"
            out.append({**top.to_dict(), "value": slope, "detail": detail})
        return pd.DataFrame(out)
    raise ValueError(f"unknown comparison kind {kind!r}")


def evaluate(
    frame: pd.DataFrame, claims: list[dict] | None = None, resolution: Resolution | None = None
) -> list[Row]:
    """One row per claim, comparison and probe; figures below their probe's ``resolution``
    (probe -> bytes) are left out."""
    tables = Tables(frame, resolution)
    out = []
    for claim in claims if claims is not None else load():
        for index, compare in enumerate(claim["compare"]):
            readings = READINGS if compare.get("size") else (None,)
            for probe in _probes(frame, compare):
                for reading in readings:
                    row = _compare(tables, claim, compare, probe, reading)
                    row.comparison = index
                    out.append(row)
    return out


def verdicts(rows: list[Row], claims: list[dict] | None = None) -> pd.DataFrame:
    """One final verdict per claim, by a written rule.

    The primary probe is the first of each comparison's probes that made its row (the
    claims file lists them in that order). Under one reading of the claim's size, the
    claim holds when every comparison the primary probe could make confirms it, and fails
    when one refutes it. The final verdict: confirmed as the readings under which it
    holds; else refuted; else not comparable. Readings and probes that disagree are
    listed beside it, never dropped.
    """
    texts = {c["id"]: c["text"] for c in (claims if claims is not None else load())}
    frame = table(rows)
    out = []
    for claim, own in frame.groupby("claim", sort=False):
        primary = own[own.probe == own.groupby("comparison").probe.transform("first")]
        by_reading = {}
        for reading, same in primary.groupby("reading", sort=False):
            judged = same[same.verdict != NOT_COMPARABLE]
            if judged.empty:
                by_reading[reading] = NOT_COMPARABLE
            elif (judged.verdict == REFUTED).any():
                by_reading[reading] = REFUTED
            else:
                by_reading[reading] = CONFIRMED
        held = [r for r, v in by_reading.items() if v == CONFIRMED]
        failed = [r for r, v in by_reading.items() if v == REFUTED]
        if held:
            final = CONFIRMED + ("" if held == ["—"] else " as " + " and ".join(held))
        elif failed:
            final = REFUTED
        else:
            final = NOT_COMPARABLE
        others = own[~own.index.isin(primary.index) & (own.verdict != NOT_COMPARABLE)]
        disagree = [f"{r.probe} {r.verdict} ({r.reading})" for r in others.itertuples()
                    if not final.startswith(r.verdict)]  # fmt: skip
        out.append({
            "claim": claim,
            "text": texts.get(claim, own.text.iloc[0]),
            "verdict": final,
            "primary probe": ", ".join(dict.fromkeys(primary.probe)),
            "by reading": "; ".join(f"{r}: {v}" for r, v in by_reading.items()),
            "disagreeing": "; ".join(disagree) or "—",
        })  # fmt: skip
    return pd.DataFrame(out)


def _probes(frame: pd.DataFrame, compare: dict) -> list[str]:
    """The listed probes that measured the selected metric in this table.

    The harness's probes change over time (rss_anon is newer than psutil_uss): a probe
    that never measured the metric here gets no row, unless none did; then the first
    one's row says why the claim cannot be compared.
    """
    select = compare["select"]
    chosen = frame[(frame.phase == select["phase"]) & (frame.metric == select["metric"])]
    measured = [p for p in compare["probes"] if (chosen.probe == p).any()]
    return measured or compare["probes"][:1]


def table(rows: list[Row]) -> pd.DataFrame:
    return pd.DataFrame([vars(r) for r in rows])
