"""Doses per decision step from the `treatments` table (one column per action dimension).

Step k of a stay covers `[t_k, min(t_k + step, stay_end))` (see `timegrid`): the action follows
the decision. Each treatment row of a spec treatment is converted to the dimension's unit
(`conversions`; units in `per_kg_units` are divided by the stay's weight, the train-median
weight when it is missing) and multiplied by its equivalence factor, then:

- `amount_sum`: the amount given within the step. A bolus (`start_time == end_time`) counts in
  the step that holds it; an infusion's `amount` is pro-rated by its overlap with the step; a
  row with only a `rate` (unit per hour, e.g. mL/h for a mL dimension; any conversion key of
  the dimension applies to amounts and rates alike) gives rate x overlap hours.
- `max_rate`: the highest single-row rate running during the step (AI Clinician convention:
  concurrent agents are not summed). Rows without a rate are not usable here.

Rows not used are counted by reason; a unit the spec cannot convert is an `InputError`.

>>> steps = step_ranges(pl.DataFrame({"s": [5], "e": [13], "t0_us": [0], "stay_end_us": [20]}), 4)
>>> steps["k"].to_list(), steps["overlap_us"].to_list()
([1, 2, 3], [3, 4, 1])
"""

from __future__ import annotations

import numpy as np
import polars as pl

from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.timegrid import US_PER_HOUR, datetime_us, hours_to_us
from clinical_mborl.core.errors import InputError, ValidationFailed, Violation

EXAMPLE_ROWS = 5
TREATMENT_COLUMNS = ["stay_id", "start_time", "end_time", "treatment", "amount", "amount_unit", "rate", "rate_unit"]


def treatment_conversions(spec: CohortSpec) -> pl.DataFrame:
    """One row per (treatment, kind, unit) the spec accepts, kind 'amount' or 'rate'."""
    rows: list[dict[str, object]] = []
    for dim, a in enumerate(spec.actions):
        conv = {u: (c.factor, c.offset) for u, c in a.conversions.items()}
        if a.aggregation == "amount_sum":
            units = {"amount": {a.unit: (1.0, 0.0), **conv}, "rate": {f"{a.unit}/h": (1.0, 0.0), **conv}}
        else:
            per_kg = {u: conv.get(u, (1.0, 0.0)) for u in a.per_kg_units}
            units = {"rate": {a.unit: (1.0, 0.0), **per_kg, **conv}}
        for treatment, equiv in a.treatments.items():
            for kind, table in units.items():
                for unit, (factor, offset) in table.items():
                    rows.append({"treatment": treatment, "kind": kind, "unit": unit, "dim": dim,
                                 "equiv": equiv, "factor": factor, "offset": offset,
                                 "per_kg": unit in a.per_kg_units})
    schema = {"treatment": pl.String, "kind": pl.String, "unit": pl.String, "dim": pl.Int32,
              "equiv": pl.Float64, "factor": pl.Float64, "offset": pl.Float64, "per_kg": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


def spec_treatment_rows(spec: CohortSpec, treatments: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Rows of spec treatments with `row_nr`, `dup` (exact repeat of an earlier row), the dose
    value/unit each dimension uses and its conversion (`factor` null: unconvertible unit;
    `kind` null: no usable dose for the dimension). Any row order."""
    dims = pl.DataFrame(
        [{"treatment": t, "dim": i, "is_sum": a.aggregation == "amount_sum"}
         for i, a in enumerate(spec.actions) for t in a.treatments],
        schema={"treatment": pl.String, "dim": pl.Int32, "is_sum": pl.Boolean},
    )
    col = pl.col
    kind = pl.when(col("is_sum") & col("amount").is_not_null()).then(pl.lit("amount")) \
        .when(col("rate").is_not_null()).then(pl.lit("rate"))
    frame = (
        treatments.lazy()
        .with_row_index("row_nr")
        .filter(col("treatment").is_in(dims["treatment"].implode()))
        .with_columns((~pl.struct(TREATMENT_COLUMNS).is_first_distinct()).alias("dup"))
        .join(dims.lazy(), on="treatment", how="left")
        .with_columns(kind.alias("kind"))
        .with_columns(
            pl.when(col("kind") == "amount").then(col("amount")).otherwise(col("rate")).alias("x"),
            pl.when(col("kind") == "amount").then(col("amount_unit")).otherwise(col("rate_unit")).alias("unit"),
        )
        .join(treatment_conversions(spec).drop("dim").lazy(), on=["treatment", "kind", "unit"], how="left")
        .select(
            col("row_nr").cast(pl.Int64), "stay_id", "dim", "kind", "x", "equiv", "factor", "offset", "per_kg",
            "dup", datetime_us("start_time").alias("s"), datetime_us("end_time").alias("e"),
        )
        .collect()
    )
    _raise_unconvertible(spec, frame)
    return frame


def _raise_unconvertible(spec: CohortSpec, frame: pl.DataFrame) -> None:
    bad = frame.filter(pl.col("kind").is_not_null() & pl.col("factor").is_null())
    if bad.height == 0:
        return
    grouped = (
        bad.group_by("dim", "kind")
        .agg(pl.len().alias("n"), pl.col("row_nr").sort().head(EXAMPLE_ROWS).alias("rows"))
        .sort("dim", "kind")
    )
    violations = []
    for dim, kind, n, rows in grouped.iter_rows():
        a = spec.actions[dim]
        accepted = sorted(treatment_conversions(spec).filter(
            (pl.col("dim") == dim) & (pl.col("kind") == kind))["unit"].unique().to_list())
        violations.append(
            Violation(
                "unconvertible_unit", "treatments", f"{kind}_unit", int(n), tuple(int(r) for r in rows),
                hint=f"treatments of action dimension {a.name} accept {kind} units {accepted}; add a "
                "conversion under the dimension's `conversions` in the cohort spec or fix the unit",
            )
        )
    raise ValidationFailed(violations, context="cohort spec vs treatments")


def inside_window() -> pl.Expr:
    """Rows (`s`, `e`, `t0_us`, `stay_end_us`) that touch `[t0, stay_end)`: a bolus inside it, or
    an interval overlapping it by more than zero."""
    bolus = pl.col("s") == pl.col("e")
    return pl.when(bolus).then(
        (pl.col("s") >= pl.col("t0_us")) & (pl.col("s") < pl.col("stay_end_us"))
    ).otherwise((pl.col("e") > pl.col("t0_us")) & (pl.col("s") < pl.col("stay_end_us")))


def step_ranges(rows: pl.DataFrame, step: int) -> pl.DataFrame:
    """Explode rows (`s`, `e`, `t0_us`, `stay_end_us`) into the steps they touch: `k`, `overlap_us`.

    A bolus (`s == e`) touches the step holding `s` (overlap 0); an interval touches every step
    it overlaps by more than zero. Rows outside `[t0, stay_end)` touch none (and are dropped).
    """
    col = pl.col
    rows = rows.filter(inside_window())
    first = ((pl.max_horizontal("s", "t0_us") - col("t0_us")) // step).alias("first")
    last = pl.when(col("s") == col("e")).then(first).otherwise(
        (pl.min_horizontal("e", "stay_end_us") - 1 - col("t0_us")) // step).alias("last")
    bounds = rows.select(first, last)
    n = (bounds["last"] - bounds["first"] + 1).to_numpy()
    idx = np.repeat(np.arange(rows.height), n)
    k = bounds["first"].to_numpy()[idx] + (np.arange(idx.size) - np.repeat(np.cumsum(n) - n, n))
    out = rows[idx].with_columns(pl.Series("k", k, dtype=pl.Int64))
    start = col("t0_us") + col("k") * step
    end = pl.min_horizontal(start + step, "stay_end_us", "e")
    return out.with_columns(
        pl.when(col("s") == col("e")).then(0).otherwise(end - pl.max_horizontal("s", start)).alias("overlap_us")
    )


def step_doses(spec: CohortSpec, rows: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """Dose per (stay, step) and dimension.

    `rows`: usable rows of `spec_treatment_rows` joined to their stay (`stay_idx`, `t0_us`,
    `stay_end_us`, `weight` filled). `windows`: the included stays (`stay_idx`, `n_steps`).
    Returns `stay_idx`, `step` (0..T-1 per stay, in order) and one column per dimension, zero
    when nothing was given. Sums accumulate in input-row order (deterministic).
    """
    step = hours_to_us(spec.time.step_hours)
    col = pl.col
    # input-row order: sums accumulate in a fixed order, so the output is byte-for-byte stable
    exploded = step_ranges(rows.sort("row_nr"), step)
    n_dims = len(spec.actions)
    is_sum = np.array([a.aggregation == "amount_sum" for a in spec.actions])
    # The arithmetic is numpy's, element by element: polars may divide a column that happens to be
    # constant by multiplying with its reciprocal, so a row's dose could depend on the other rows.
    x, factor, shift, equiv, weight, per_kg = (exploded[c].to_numpy() for c in (
        "x", "factor", "offset", "equiv", "weight", "per_kg"))
    v = (x * factor + shift) * equiv
    v = np.where(per_kg, v / np.where(per_kg, weight, 1.0), v)
    overlap = exploded["overlap_us"].to_numpy().astype(np.float64)
    duration = (exploded["e"] - exploded["s"]).to_numpy().astype(np.float64)
    dim = exploded["dim"].to_numpy().astype(np.int64)
    is_rate = (exploded["kind"] == "rate").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(~is_sum[dim], v,
                     np.where(is_rate, v * overlap / US_PER_HOUR,
                              np.where(duration == 0, v, v * overlap / duration)))
    grid = windows.filter(pl.col("n_steps") > 0).sort("stay_idx")
    n_steps = grid["n_steps"].to_numpy()
    offset = np.zeros(int(windows["stay_idx"].cast(pl.Int64).to_numpy().max(initial=0)) + 1, dtype=np.int64)
    offset[grid["stay_idx"].to_numpy()] = np.cumsum(n_steps) - n_steps
    cell = (offset[exploded["stay_idx"].to_numpy()] + exploded["k"].to_numpy()) * n_dims + dim
    n_cells = int(n_steps.sum()) * n_dims
    doses = np.bincount(cell[is_sum[dim]], weights=c[is_sum[dim]], minlength=n_cells).astype(np.float64)
    peak = np.zeros(n_cells)
    np.maximum.at(peak, cell[~is_sum[dim]], c[~is_sum[dim]])
    doses = np.where(np.tile(is_sum, n_cells // max(n_dims, 1)), doses, peak).reshape(-1, n_dims)
    _check_max_dose(spec, doses, cell, exploded["row_nr"].to_numpy())
    out = grid.select("stay_idx", pl.int_ranges(0, col("n_steps"), dtype=pl.Int64).alias("step")).explode("step")
    return out.with_columns(pl.Series(a.name, doses[:, j]) for j, a in enumerate(spec.actions))


def order_timing(spec: CohortSpec, rows: pl.DataFrame) -> list[tuple[str, int, float]]:
    """(dimension, orders, share charted >= 1 h after the start of their step) per action dimension.

    `rows`: usable rows inside the window, as `step_doses` takes them (`s`, `t0_us`, `dim`).

    >>> from clinical_mborl.cohort.toy import toy_spec
    >>> h = 3_600_000_000
    >>> rows = pl.DataFrame({"s": [0, h // 2, 5 * h, 7 * h], "t0_us": [0] * 4, "dim": [0, 0, 0, 1]})
    >>> order_timing(toy_spec(), rows)
    [('iv_fluid_ml', 3, 0.3333333333333333), ('norepinephrine_ug_kg_min', 1, 1.0)]
    """
    step = hours_to_us(spec.time.step_hours)
    into = (pl.max_horizontal("s", "t0_us") - pl.col("t0_us")) % step
    late = rows.select(pl.col("dim"), (into >= US_PER_HOUR).alias("late"))
    out = []
    for dim, a in enumerate(spec.actions):
        mine = late.filter(pl.col("dim") == dim)["late"]
        out.append((a.name, mine.len(), float(mine.mean()) if mine.len() else 0.0))  # type: ignore[arg-type]
    return out


def _check_max_dose(spec: CohortSpec, doses: np.ndarray, cell: np.ndarray, row_nr: np.ndarray) -> None:
    """Refuse steps whose dose exceeds the dimension's `max_dose` (rows named, values never)."""
    violations = []
    n_dims = len(spec.actions)
    for dim, a in enumerate(spec.actions):
        if a.max_dose is None:
            continue
        over = np.flatnonzero(doses[:, dim] > a.max_dose)
        if over.size:
            rows = np.unique(row_nr[np.isin(cell, over * n_dims + dim)])[:EXAMPLE_ROWS]
            violations.append(Violation(
                "dose_above_max", "treatments", "amount" if a.aggregation == "amount_sum" else "rate",
                int(over.size), tuple(int(r) for r in rows),
                hint=f"{over.size} step(s) of action dimension {a.name} exceed max_dose "
                f"{a.max_dose:g} {a.unit}; check the units of these rows or raise max_dose",
            ))
    if violations:
        raise ValidationFailed(violations, context="cohort spec vs treatments")


def usable_dose() -> pl.Expr:
    """Rows that can contribute a dose: a value for the dimension and, for rates, a duration."""
    return pl.col("kind").is_not_null() & ~((pl.col("kind") == "rate") & (pl.col("s") == pl.col("e")))


def check_weights(windows: pl.DataFrame) -> None:
    """Per-kg conversion needs a positive weight for every included stay (after filling)."""
    bad = windows.filter(pl.col("weight").is_null() | (pl.col("weight") <= 0))
    if bad.height:
        raise InputError(
            f"{bad.height} included stay(s) have no usable weight for per-kg dose conversion; "
            "expected weight_kg > 0 or a train-median fill; set criteria.require_weight or fix stays.weight_kg"
        )
