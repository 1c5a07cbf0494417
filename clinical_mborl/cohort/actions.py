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
    """Rows of spec treatments with `row_nr`, `dup`, the value/unit each dimension uses and its
    conversion (`factor` null: unconvertible; `kind` null: no usable dose for the dimension)."""
    names = [t for a in spec.actions for t in a.treatments]
    dim_of = {t: i for i, a in enumerate(spec.actions) for t in a.treatments}
    sums = {t: spec.actions[d].aggregation == "amount_sum" for t, d in dim_of.items()}
    is_sum = pl.col("treatment").replace_strict(sums, return_dtype=pl.Boolean)
    kind = (
        pl.when(is_sum & pl.col("amount").is_not_null()).then(pl.lit("amount"))
        .when(pl.col("rate").is_not_null()).then(pl.lit("rate"))
    )
    frame = (
        treatments.lazy()
        .with_row_index("row_nr")
        .with_columns((~pl.struct(TREATMENT_COLUMNS).is_first_distinct()).alias("dup"))
        .filter(pl.col("treatment").is_in(names))
        .with_columns(kind.alias("kind"))
        .with_columns(
            pl.when(pl.col("kind") == "amount").then(pl.col("amount")).otherwise(pl.col("rate")).alias("x"),
            pl.when(pl.col("kind") == "amount").then(pl.col("amount_unit")).otherwise(pl.col("rate_unit")).alias("unit"),
        )
        .join(treatment_conversions(spec).lazy(), on=["treatment", "kind", "unit"], how="left")
        .with_columns(pl.col("treatment").replace_strict(dim_of, return_dtype=pl.Int32).alias("dim"))
        .select(
            pl.col("row_nr").cast(pl.Int64), "stay_id", "dim", "kind", "x", "equiv", "factor", "offset", "per_kg",
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
        (pl.col("s") > pl.col("t0_us")) & (pl.col("s") <= pl.col("stay_end_us"))
    ).otherwise((pl.col("e") > pl.col("t0_us")) & (pl.col("s") < pl.col("stay_end_us")))


def step_ranges(rows: pl.DataFrame, step: int) -> pl.DataFrame:
    """Explode rows (`s`, `e`, `t0_us`, `stay_end_us`) into the steps they touch: `k`, `overlap_us`.

    A bolus (`s == e`) touches the step holding `s` (overlap 0); an interval touches every step
    it overlaps by more than zero. Rows outside `[t0, stay_end)` touch none (and are dropped).
    """
    bolus = pl.col("s") == pl.col("e")
    first = (pl.max_horizontal("s", "t0_us") - pl.col("t0_us")) // step
    last = pl.when(bolus).then(first).otherwise(
        (pl.min_horizontal("e", "stay_end_us") - 1 - pl.col("t0_us")) // step
    )
    out = rows.filter(inside_window()).with_columns(pl.int_ranges(first, last + 1).alias("k")).explode("k")
    start = pl.col("t0_us") + pl.col("k") * step
    end = pl.min_horizontal(start + step, "stay_end_us", "e")
    return out.with_columns(
        pl.when(bolus).then(0).otherwise(end - pl.max_horizontal("s", start)).alias("overlap_us")
    )


def step_doses(spec: CohortSpec, rows: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """Dose per (stay, step) and dimension.

    `rows`: usable rows of `spec_treatment_rows` joined to their stay (`stay_idx`, `t0_us`,
    `stay_end_us`, `weight` filled). `windows`: the included stays (`stay_idx`, `n_steps`).
    Returns `stay_idx`, `step` and one column per dimension, zero when nothing was given.
    """
    step = hours_to_us(spec.time.step_hours)
    joined = rows
    value = (pl.col("x") * pl.col("factor") + pl.col("offset")) * pl.col("equiv")
    value = pl.when(pl.col("per_kg")).then(value / pl.col("weight")).otherwise(value)
    exploded = step_ranges(joined.with_columns(value.alias("v")), step)
    duration = pl.col("e") - pl.col("s")
    is_sum = pl.col("dim").is_in([i for i, a in enumerate(spec.actions) if a.aggregation == "amount_sum"])
    contribution = (
        pl.when(~is_sum).then(pl.col("v"))
        .when(pl.col("kind") == "rate").then(pl.col("v") * pl.col("overlap_us") / US_PER_HOUR)
        .when(duration == 0).then(pl.col("v"))
        .otherwise(pl.col("v") * pl.col("overlap_us") / duration)
    )
    per_step = (
        exploded.with_columns(contribution.alias("c"))
        .sort("stay_idx", "dim", "k", "row_nr")
        .group_by("stay_idx", "k", "dim", maintain_order=True)
        .agg(pl.when(is_sum.first()).then(pl.col("c").sum()).otherwise(pl.col("c").max()).alias("dose"),
             pl.col("row_nr").min().alias("row_nr"))
    )
    _check_max_dose(spec, per_step)
    grid = windows.filter(pl.col("n_steps") > 0).select(
        "stay_idx", pl.int_ranges(0, pl.col("n_steps")).alias("step")
    ).explode("step")
    out = grid.with_columns(pl.col("step").cast(pl.Int64))
    for dim, a in enumerate(spec.actions):
        col = per_step.filter(pl.col("dim") == dim).select(
            "stay_idx", pl.col("k").cast(pl.Int64).alias("step"), pl.col("dose").alias(a.name)
        )
        out = out.join(col, on=["stay_idx", "step"], how="left", maintain_order="left")
    return out.with_columns(pl.col(a.name).fill_null(0.0) for a in spec.actions).sort("stay_idx", "step")


def _check_max_dose(spec: CohortSpec, per_step: pl.DataFrame) -> None:
    violations = []
    for dim, a in enumerate(spec.actions):
        if a.max_dose is None:
            continue
        over = per_step.filter((pl.col("dim") == dim) & (pl.col("dose") > a.max_dose))
        if over.height:
            rows = tuple(int(r) for r in over["row_nr"].sort().head(EXAMPLE_ROWS))
            violations.append(Violation(
                "dose_above_max", "treatments", "amount" if a.aggregation == "amount_sum" else "rate",
                over.height, rows,
                hint=f"{over.height} step(s) of action dimension {a.name} exceed max_dose "
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
