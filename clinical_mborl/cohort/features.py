"""State featurisation: the state of a stay at any decision time, from data charted before it.

The rule (also used by `cohort build`, see `timegrid` for the grid):

- For feature f and decision time d, let `tau` be the time of the last valid value charted
  strictly before d. If there is none, the value is missing.
- The value is the spec's aggregation (`last`, `mean`, `min`, `max`, `sum`, `count`) over the
  step-wide window that holds `tau`, counted back from d: `[d - (j+1) step, d - j step)` with
  `j = ceil((d - tau) / step) - 1`. `j = 0` is the current window `[d - step, d)`; `j > 0` is
  carry-forward of the most recent window with data, allowed only while
  `d - tau <= max_carry_hours` (older is missing).
- Missing values get the feature's fill value (train median or zero; `fill_values`), and
  `<name>_missing` = 1.0 marks them (carried values are observed, not imputed).
- Static features come from `stays`: `age_years`, `sex_female` (F 1, M 0, U missing) and
  `weight_kg` (missing when empty).

`compute_states` takes arbitrary decision times per stay, so a simulator's closed loop builds the
state from what it charted so far with exactly the code that `cohort build` uses.

>>> import datetime as dt
>>> from clinical_mborl.cohort.measurements import _example_spec
>>> spec = _example_spec()
>>> stays = pl.DataFrame({"stay_id": ["a"], "admit_time": [dt.datetime(2020, 1, 1)],
...                       "age_years": [70.0], "sex": ["F"], "weight_kg": [None]})
>>> m = pl.DataFrame({"stay_id": ["a", "a"], "time": [dt.datetime(2020, 1, 1, 1)] * 2,
...                   "variable": ["map", "lactate"], "value": [65.0, 2.0], "unit": ["mmHg", "mmol/L"]})
>>> d = pl.DataFrame({"stay_id": ["a", "a"], "decision_time": [dt.datetime(2020, 1, 1, 1),
...                                                            dt.datetime(2020, 1, 1, 4)]})
>>> compute_states(spec, stays, m, d)["map_mmhg"].to_list()
[None, 65.0]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from clinical_mborl.cohort.measurements import scan_spec_measurements
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.timegrid import (
    DECISION,
    TimeGrid,
    datetime_us,
    hours_to_us,
    stay_anchors,
)
from clinical_mborl.core.errors import InputError

MISSING_SUFFIX = "_missing"
AGGREGATIONS = ("last", "mean", "min", "max", "sum", "count")


def measurement_names(spec: CohortSpec) -> list[str]:
    return [f.name for f in spec.features]


def indicator_names(spec: CohortSpec) -> list[str]:
    """`<name>_missing` columns, measurement features first, then static features."""
    return [f.name + MISSING_SUFFIX for f in spec.features if f.missing_indicator] + [
        s.name + MISSING_SUFFIX for s in spec.static_features if s.missing_indicator
    ]


def state_names(spec: CohortSpec) -> list[str]:
    """The state columns in order: measurement features, static features, missing indicators.

    >>> from clinical_mborl.cohort.measurements import _example_spec
    >>> state_names(_example_spec())
    ['lactate_mmol_l', 'map_mmhg', 'lactate_mmol_l_missing', 'map_mmhg_missing']
    """
    return measurement_names(spec) + [s.name for s in spec.static_features] + indicator_names(spec)


def window_values(spec: CohortSpec, kept: pl.DataFrame, decisions: pl.DataFrame) -> np.ndarray:
    """The (unfilled) measurement features at each decision: float64 [n_decisions, F], NaN = missing.

    `kept`: usable rows (`stay_idx`, `feat`, `time_us`, `value`) sorted by stay, feature, time.
    `decisions`: `stay_idx`, `decision_us`, one row per decision (the output's row order).
    """
    n_feat, n_dec = len(spec.features), decisions.height
    out = np.full(n_dec * n_feat, np.nan)
    if n_dec == 0 or kept.height == 0:
        return out.reshape(n_dec, n_feat)
    step = hours_to_us(spec.time.step_hours)
    carry = pl.Series([hours_to_us(f.max_carry_hours) for f in spec.features], dtype=pl.Int64)
    agg = pl.Series([AGGREGATIONS.index(f.aggregation) for f in spec.features], dtype=pl.Int32)
    rows = kept.select(
        (pl.col("stay_idx") * n_feat + pl.col("feat")).cast(pl.Int64).alias("grp"),
        "time_us",
    ).with_row_index("idx")
    feats = pl.DataFrame({"feat": np.arange(n_feat, dtype=np.int32)})
    queries = (
        decisions.select(pl.col("stay_idx").cast(pl.Int64), DECISION)
        .with_row_index("qid")
        .join(feats, how="cross")
        .with_columns((pl.col("stay_idx") * n_feat + pl.col("feat")).alias("grp"))
        .sort("grp", DECISION)
    )
    # Last valid value strictly before the decision time.
    last = queries.join_asof(
        rows.rename({"time_us": "tau", "idx": "i_last"}), left_on=DECISION, right_on="tau",
        by="grp", strategy="backward", allow_exact_matches=False, check_sortedness=False,
    ).filter(pl.col("tau").is_not_null())
    age = pl.col(DECISION) - pl.col("tau")
    last = last.with_columns(((age - 1) // step).alias("j")).filter(
        (pl.col("j") == 0) | (age <= pl.lit(carry).gather(pl.col("feat")))
    ).with_columns(
        (pl.col(DECISION) - pl.col("j") * step - step).alias("lo"),
        pl.lit(agg).gather(pl.col("feat")).alias("agg"),
    )
    values = kept["value"]
    latest = last.filter(pl.col("agg") == 0)
    parts = [latest.select("qid", "feat", values.gather(latest["i_last"]).alias("v"))]
    ranged = last.filter(pl.col("agg") > 0)
    if ranged.height:
        parts.append(_range_aggregates(ranged, rows, values, step))
    result = pl.concat(parts)
    flat = (result["qid"].cast(pl.Int64) * n_feat + result["feat"].cast(pl.Int64)).to_numpy()
    out[flat] = result["v"].to_numpy()
    return out.reshape(n_dec, n_feat)


def _range_aggregates(ranged: pl.DataFrame, rows: pl.DataFrame, values: pl.Series, step: int) -> pl.DataFrame:
    """Aggregate the rows of each window [lo, tau] (row range [i_first, i_last]) by its kind."""
    ranged = ranged.sort("grp", "lo").join_asof(
        rows.rename({"time_us": "t_first", "idx": "i_first"}), left_on="lo", right_on="t_first",
        by="grp", strategy="forward", check_sortedness=False,
    )
    windows = ranged.select("i_first", "i_last", "agg").unique()
    exploded = windows.with_columns(
        pl.int_ranges(pl.col("i_first"), pl.col("i_last") + 1).alias("i")
    ).explode("i")
    exploded = exploded.with_columns(values.gather(exploded["i"]).alias("x"))
    x, kind = pl.col("x"), pl.col("agg").first()
    aggregated = exploded.group_by("i_first", "i_last").agg(
        pl.when(kind == 1).then(x.mean())
        .when(kind == 2).then(x.min())
        .when(kind == 3).then(x.max())
        .when(kind == 4).then(x.sum())
        .otherwise(x.len().cast(pl.Float64))
        .alias("v")
    )
    return ranged.join(aggregated, on=["i_first", "i_last"], how="left").select("qid", "feat", "v")


def static_values(spec: CohortSpec, stays: pl.DataFrame, stay_idx: pl.Series) -> pl.DataFrame:
    """Static features (unfilled) for the decision rows whose stays are `stay_idx`."""
    sex = pl.col("sex")
    exprs = {
        "age_years": pl.col("age_years").cast(pl.Float64),
        "sex_female": pl.when(sex == "F").then(1.0).when(sex == "M").then(0.0).otherwise(None),
        "weight_kg": pl.col("weight_kg").cast(pl.Float64),
    }
    table = stays.select(pl.col("stay_idx").cast(pl.Int64),
                         *[exprs[s.name].alias(s.name) for s in spec.static_features])
    return pl.DataFrame({"stay_idx": stay_idx.cast(pl.Int64)}).join(
        table, on="stay_idx", how="left", maintain_order="left"
    ).drop("stay_idx")


def assemble_states(spec: CohortSpec, values: np.ndarray, statics: pl.DataFrame) -> pl.DataFrame:
    """Measurement features (null = missing), static features and `<name>_missing` indicators."""
    frame = pl.DataFrame(
        {f.name: pl.Series(values[:, i], dtype=pl.Float64).fill_nan(None) for i, f in enumerate(spec.features)}
    )
    frame = pl.concat([frame, statics], how="horizontal") if statics.width else frame
    flagged = [f.name for f in spec.features if f.missing_indicator] + [
        s.name for s in spec.static_features if s.missing_indicator
    ]
    return frame.with_columns(
        pl.col(n).is_null().cast(pl.Float64).alias(n + MISSING_SUFFIX) for n in flagged
    ).select(state_names(spec))


def apply_fill(spec: CohortSpec, states: pl.DataFrame, fill_values: Mapping[str, float]) -> pl.DataFrame:
    """Replace missing feature values by `fill_values` (from the manifest, fitted on train).

    >>> from clinical_mborl.cohort.measurements import _example_spec
    >>> s = pl.DataFrame({"lactate_mmol_l": [None, 2.0], "map_mmhg": [70.0, None]})
    >>> apply_fill(_example_spec(), s, {"lactate_mmol_l": 1.5, "map_mmhg": 75.0}).rows()
    [(1.5, 70.0), (2.0, 75.0)]
    """
    names = measurement_names(spec) + [s.name for s in spec.static_features]
    absent = [n for n in names if n in states.columns and n not in fill_values]
    if absent:
        raise InputError(
            f"fill values missing for {absent}; pass the fitted values of the cohort manifest "
            "(`fill_values_from_manifest(manifest)`)"
        )
    return states.with_columns(pl.col(n).fill_null(float(fill_values[n])) for n in names if n in states.columns)


def compute_states(
    spec: CohortSpec,
    stays: pl.DataFrame | pl.LazyFrame,
    measurements: pl.DataFrame | pl.LazyFrame,
    decision_times: pl.DataFrame,
    fill_values: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """The state of each (stay, decision time) in clinical units, built from data charted before it.

    `stays` needs `stay_id`, `admit_time`, `age_years`, `sex`, `weight_kg`; `measurements` is the
    canonical table (any units the spec converts); `decision_times` has `stay_id` and
    `decision_time` (datetime), in any order. Returns `stay_id`, `decision_time` and the state
    columns (`state_names(spec)`) in the order of `decision_times`. Without `fill_values`,
    missing values stay null; pass `fill_values_from_manifest(manifest)` to fill them exactly as
    `cohort build` did. Raises `InputError` for unknown stays or unconvertible units.

    >>> states = compute_states(spec, stays, measurements, decisions, fill_values=fills)  # doctest: +SKIP
    """
    anchors = stay_anchors(TimeGrid.from_spec(spec.time), stays.lazy().collect())
    stay_idx = decision_times.select("stay_id").join(
        anchors.select("stay_id", "stay_idx"), on="stay_id", how="left", maintain_order="left"
    )["stay_idx"]
    if stay_idx.null_count():
        raise InputError(
            f"decision_times: {stay_idx.null_count()} row(s) name a stay_id that is not in stays; "
            "pass the stays whose states you want"
        )
    times = decision_times.select(datetime_us("decision_time").alias(DECISION))[DECISION]
    decisions = pl.DataFrame({"stay_idx": stay_idx.cast(pl.Int64), DECISION: times})
    rows = scan_spec_measurements(spec, measurements, anchors, streaming=False)
    kept = rows.filter(pl.col("stay_idx").is_not_null() & ~pl.col("dup") & pl.col("in_time") & pl.col("in_range"))
    values = window_values(spec, kept, decisions)
    states = assemble_states(spec, values, static_values(spec, anchors, decisions["stay_idx"]))
    if fill_values is not None:
        states = apply_fill(spec, states, fill_values)
    return pl.concat([decision_times.select("stay_id", "decision_time"), states], how="horizontal")


def fill_values_from_manifest(manifest: object) -> dict[str, float]:
    """`{feature: fill value}` from a `CohortManifest` (its `state_features`).

    >>> from clinical_mborl.cohort.toy import make_toy_transitions
    >>> fill_values_from_manifest(make_toy_transitions(5).manifest)
    {}
    """
    features = getattr(manifest, "state_features", [])
    return {f.name: float(f.fill_value) for f in features if f.fill_value is not None}
