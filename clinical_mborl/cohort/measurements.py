"""Measurement rows the spec reads: unit conversion, valid ranges and exact duplicates.

One lazy (streaming-capable) pass over the `measurements` table keeps the rows of the spec's
variables, joins each to its unit conversion and to its stay, and converts the value. The result
is sorted by (stay, feature, time, value) and flagged: exact duplicate, inside the stay's usable
time, inside the feature's valid range. Callers decide what to drop and count (`build`) or
simply keep the usable rows (`compute_states`). A unit the spec cannot convert is an `InputError`
naming table, column, reason code and example rows, never a value.

>>> spec_rows = measurement_conversions(_example_spec())
>>> spec_rows.filter(pl.col("unit") == "mg/dL").select("variable", "factor").row(0)
('lactate', 0.111)
"""

from __future__ import annotations

import polars as pl

from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.timegrid import datetime_us
from clinical_mborl.core.errors import ValidationFailed, Violation

UNCONVERTIBLE_UNIT = "unconvertible_unit"
EXAMPLE_ROWS = 5
SORT_KEYS = ["stay_idx", "feat", "time_us", "value", "conv_id"]


def measurement_conversions(spec: CohortSpec) -> pl.DataFrame:
    """One row per (variable, unit) the spec accepts: feature index, factor, offset, valid range."""
    rows: list[dict[str, object]] = []
    for i, f in enumerate(spec.features):
        units = {f.unit: (1.0, 0.0), **{u: (c.factor, c.offset) for u, c in f.conversions.items()}}
        for var in f.variables:
            for unit, (factor, offset) in units.items():
                rows.append({"variable": var, "unit": unit, "feat": i, "factor": factor,
                             "offset": offset, "lo": f.valid_range[0], "hi": f.valid_range[1]})
    schema = {"variable": pl.String, "unit": pl.String, "feat": pl.Int32, "factor": pl.Float64,
              "offset": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}
    return pl.DataFrame(rows, schema=schema).with_row_index("conv_id").with_columns(
        pl.col("conv_id").cast(pl.Int32)
    )


def spec_variables(spec: CohortSpec) -> list[str]:
    return [v for f in spec.features for v in f.variables]


def scan_spec_measurements(
    spec: CohortSpec,
    measurements: pl.LazyFrame | pl.DataFrame,
    anchors: pl.DataFrame,
    *,
    streaming: bool = True,
) -> pl.DataFrame:
    """Rows of the spec's variables with stay, feature, converted value and flags, sorted.

    `anchors` has `stay_id`, `stay_idx`, `lb_us` and optionally `stay_end_us` (the build passes
    it; a simulator building states of running stays does not). Columns of the result:
    `row_nr` (0-based row of the input table), `stay_idx` (null: stay not in `anchors`), `feat`,
    `conv_id`, `time_us`, `value` (converted), `dup` (exact repeat of an earlier row),
    `in_time` (charted in [lookback start, stay end)), `in_range` (inside the valid range).

    >>> import datetime as dt
    >>> spec = _example_spec()
    >>> m = pl.DataFrame({"stay_id": ["a", "a"], "time": [dt.datetime(2020, 1, 1)] * 2,
    ...                   "variable": ["lactate"] * 2, "value": [18.0, 18.0], "unit": ["mg/dL"] * 2})
    >>> a = pl.DataFrame({"stay_id": ["a"], "stay_idx": [0], "lb_us": [0]})
    >>> scan_spec_measurements(spec, m, a).select("value", "dup").rows()
    [(1.998, False), (1.998, True)]
    """
    lazy = measurements.lazy()
    conv = measurement_conversions(spec)
    variables = spec_variables(spec)
    keep_anchor = [c for c in ("stay_id", "stay_idx", "lb_us", "stay_end_us") if c in anchors.columns]
    query = (
        lazy.with_row_index("row_nr")
        .filter(pl.col("variable").is_in(variables))
        .join(conv.lazy(), on=["variable", "unit"], how="left")
        .join(anchors.lazy().select(keep_anchor), on="stay_id", how="left")
        .select(
            pl.col("row_nr").cast(pl.Int64),
            pl.col("variable").replace_strict(variables, list(range(len(variables))),
                                              return_dtype=pl.Int32).alias("var_idx"),
            pl.col("stay_idx").cast(pl.Int64),
            "feat",
            "conv_id",
            datetime_us("time").alias("time_us"),
            "value",
            "factor",
            "offset",
            "lo",
            "hi",
            *[c for c in ("lb_us", "stay_end_us") if c in keep_anchor],
        )
    )
    frame = query.collect(engine="streaming" if streaming else "auto")
    _raise_unconvertible(spec, frame)
    converted = pl.col("value") * pl.col("factor") + pl.col("offset")
    end_ok = pl.col("time_us") < pl.col("stay_end_us") if "stay_end_us" in frame.columns else pl.lit(True)
    frame = frame.with_columns(converted.alias("value")).sort(SORT_KEYS, nulls_last=True)
    same_as_prev = pl.all_horizontal(
        (pl.col(c) == pl.col(c).shift(1)).fill_null(False) for c in ("stay_idx", "feat", "time_us", "conv_id")
    ) & (pl.col("value") == pl.col("value").shift(1)).fill_null(False)
    return frame.select(
        "row_nr", "stay_idx", "feat", "conv_id", "time_us", "value",
        same_as_prev.alias("dup"),
        ((pl.col("time_us") >= pl.col("lb_us")) & end_ok).fill_null(False).alias("in_time"),
        pl.col("value").is_between(pl.col("lo"), pl.col("hi")).fill_null(False).alias("in_range"),
    )


def _raise_unconvertible(spec: CohortSpec, frame: pl.DataFrame) -> None:
    """Rows whose (variable, unit) has no conversion: one violation per variable, rows only."""
    bad = frame.filter(pl.col("conv_id").is_null())
    if bad.height == 0:
        return
    variables = spec_variables(spec)
    feature_of = {v: f for f in spec.features for v in f.variables}
    per_var = (
        bad.group_by("var_idx")
        .agg(pl.len().alias("n"), pl.col("row_nr").sort().head(EXAMPLE_ROWS).alias("rows"))
        .sort("var_idx")
    )
    violations = []
    for var_idx, n, rows in per_var.iter_rows():
        name = variables[var_idx]
        f = feature_of[name]
        violations.append(
            Violation(
                UNCONVERTIBLE_UNIT, "measurements", "unit", int(n), tuple(int(r) for r in rows),
                hint=f"variable '{name}' (feature {f.name}) accepts units {[f.unit, *f.conversions]}; "
                "add a conversion under the feature's `conversions` in the cohort spec or fix the unit",
            )
        )
    raise ValidationFailed(violations, context="cohort spec vs measurements")


def _example_spec() -> CohortSpec:
    """A two-feature spec for doc-strings and tests."""
    from clinical_mborl.cohort.spec import ActionDimensionSpec, FeatureSpec

    return CohortSpec(
        name="example",
        description="doc-string example",
        features=[
            FeatureSpec(name="lactate_mmol_l", source="lactate", unit="mmol/L",
                        conversions={"mg/dL": {"factor": 0.111}}, valid_range=(0.1, 30)),
            FeatureSpec(name="map_mmhg", source="map", unit="mmHg", valid_range=(10, 250),
                        aggregation="mean"),
        ],
        actions=[ActionDimensionSpec(name="iv_fluid_ml", treatments={"crystalloid": 1.0},
                                     aggregation="amount_sum", unit="mL")],
    )
