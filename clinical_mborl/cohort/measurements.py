"""Measurement rows the spec reads: unit conversion and valid ranges, in one streaming pass.

One lazy (streaming-capable) pass over the `measurements` table keeps the rows of the spec's
variables, maps each to its stay, feature and unit conversion (small lookup tables, no string
joins), converts the value and flags whether it lies in the stay's usable time and in the
feature's valid range. Callers decide what to drop and count (`build`) or simply keep the usable
rows (`compute_states`); exact duplicates are found later, when the usable rows are sorted
(`features.ChartIndex`). A unit the spec cannot convert is an `InputError` naming table,
column, reason code and example rows, never a value.

>>> spec_rows = measurement_conversions(_example_spec())
>>> spec_rows.filter(pl.col("unit") == "mg/dL").select("variable", "factor").row(0)
('lactate', 0.111)
"""

from __future__ import annotations

import numpy as np
import polars as pl

from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.timegrid import datetime_us
from clinical_mborl.core.errors import ValidationFailed, Violation

UNCONVERTIBLE_UNIT = "unconvertible_unit"
EXAMPLE_ROWS = 5


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
    """Rows of the spec's variables with stay, feature, converted value and flags (any order).

    `anchors` has `stay_id`, `stay_idx`, `lb_us` and optionally `stay_end_us` (the build passes
    it; a simulator building states of running stays does not). Columns of the result:
    `row_nr` (0-based row of the input table), `stay_idx` (null: stay not in `anchors`), `feat`,
    `conv_id`, `time_us`, `value` (converted), `in_time` (charted in [lookback start, stay
    end)), `in_range` (inside the feature's valid range).

    >>> import datetime as dt
    >>> spec = _example_spec()
    >>> m = pl.DataFrame({"stay_id": ["a", "a"], "time": [dt.datetime(2020, 1, 1)] * 2,
    ...                   "variable": ["lactate"] * 2, "value": [18.0, 40.0], "unit": ["mg/dL", "mmol/L"]})
    >>> a = pl.DataFrame({"stay_id": ["a"], "stay_idx": [0], "lb_us": [0]})
    >>> scan_spec_measurements(spec, m, a).sort("value").select("value", "in_range").rows()
    [(1.998, True), (40.0, False)]
    """
    col = pl.col
    keep = [c for c in ("stay_id", "stay_idx", "lb_us", "stay_end_us") if c in anchors.columns]
    end = col("stay_end_us") if "stay_end_us" in keep else pl.lit(np.iinfo(np.int64).max)
    rows = measurements.lazy().filter(col("variable").is_in(spec_variables(spec)))
    query = (
        rows.join(measurement_conversions(spec).lazy(), on=["variable", "unit"], how="left")
        .join(anchors.lazy().select(keep), on="stay_id", how="left")
        .select(
            col("stay_idx").cast(pl.Int64),
            "feat",
            "conv_id",
            datetime_us("time").alias("time_us"),
            (col("value") * col("factor") + col("offset")).alias("value"),
            ((datetime_us("time") >= col("lb_us")) & (datetime_us("time") < end)).fill_null(False).alias("in_time"),
            (col("value") * col("factor") + col("offset")).is_between(col("lo"), col("hi"))
            .fill_null(False).alias("in_range"),
        )
    )
    frame = query.collect(engine="streaming" if streaming else "auto")
    if frame["conv_id"].null_count():
        _raise_unconvertible(spec, measurements)
    return frame


def _raise_unconvertible(spec: CohortSpec, measurements: pl.LazyFrame | pl.DataFrame) -> None:
    """Rows whose (variable, unit) has no conversion: one violation per variable, rows only."""
    bad = (
        measurements.lazy().with_row_index("row_nr")
        .filter(pl.col("variable").is_in(spec_variables(spec)))
        .join(measurement_conversions(spec).lazy(), on=["variable", "unit"], how="anti")
        .group_by("variable")
        .agg(pl.len().alias("n"), pl.col("row_nr").sort().head(EXAMPLE_ROWS).alias("rows"))
        .sort("variable")
        .collect()
    )
    feature_of = {v: f for f in spec.features for v in f.variables}
    violations = []
    for name, n, rows in bad.iter_rows():
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
