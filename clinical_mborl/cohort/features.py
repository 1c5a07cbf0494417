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
from dataclasses import dataclass

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
from clinical_mborl.cohort.treatment_history import treatment_names
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


def charted_state_names(spec: CohortSpec) -> list[str]:
    """The state columns built from the chart (`compute_states`): measurement features, static
    features, missing indicators.

    >>> from clinical_mborl.cohort.measurements import _example_spec
    >>> charted_state_names(_example_spec())
    ['lactate_mmol_l', 'map_mmhg', 'lactate_mmol_l_missing', 'map_mmhg_missing']
    """
    return measurement_names(spec) + [s.name for s in spec.static_features] + indicator_names(spec)


def state_names(spec: CohortSpec) -> list[str]:
    """All state columns in order: `charted_state_names`, then the treatment-history features
    (`cohort.treatment_history`), which come from the doses given before the decision."""
    return charted_state_names(spec) + treatment_names(spec)


@dataclass(frozen=True)
class ChartIndex:
    """The usable measurement rows, sorted by (stay, feature, time, value) and searchable.

    Rows are encoded as one int64 key `grp * span + t` with `grp = stay_idx * F + feat` and `t`
    the time since the stay's lookback start (or, when that would overflow, the rank of the
    time among all distinct times), so "the last value before d" is one `np.searchsorted`.
    Exact duplicates (same stay, time, variable, unit, value) are dropped and counted here.
    """

    keys: np.ndarray
    values: np.ndarray  # one more than keys: a trailing 0.0 sentinel
    span: int
    lb: np.ndarray  # lookback start per stay_idx (us)
    distinct_times: np.ndarray | None  # set when keys use time ranks
    n_feat: int
    n_duplicates: int

    @classmethod
    def build(cls, rows: pl.DataFrame, lb: np.ndarray, n_feat: int) -> ChartIndex:
        """`rows`: usable rows with `stay_idx`, `feat`, `conv_id`, `time_us`, `value` (any order)."""
        lb = np.asarray(lb, dtype=np.int64)
        grp = pl.col("stay_idx").cast(pl.Int64) * n_feat + pl.col("feat")
        rel = pl.col("time_us") - pl.lit(pl.Series(lb)).gather(pl.col("stay_idx"))
        rows = rows.select(grp.alias("grp"), rel.alias("rel"), "time_us", "value", "conv_id")
        n_grp = max(1, int(lb.size) * n_feat)
        span = int(rows["rel"].to_numpy().max(initial=0)) + 2
        distinct = None
        if n_grp * span >= 2**62:  # a very long time range: encode time by its rank instead
            distinct = np.unique(rows["time_us"].to_numpy())
            rows = rows.with_columns(pl.Series("rel", np.searchsorted(distinct, rows["time_us"].to_numpy())))
            span = distinct.size + 2
        key = rows.select(pl.col("grp") * span + pl.col("rel"))[:, 0].to_numpy()
        order = np.argsort(key, kind="stable")  # fast on extracts already grouped by stay
        key, values = key[order], rows["value"].to_numpy()[order]
        tie = key[1:] == key[:-1]  # same stay, feature and time: order by value, then unit
        dup = np.zeros(key.size, dtype=bool)
        if tie.any():
            member = np.zeros(key.size, dtype=bool)
            member[1:] |= tie
            member[:-1] |= tie
            sub = np.flatnonzero(member)
            conv = rows["conv_id"].to_numpy()[order[sub]]
            perm = np.lexsort((conv, values[sub], key[sub]))
            values[sub], conv = values[sub][perm], conv[perm]
            same = (key[sub][1:] == key[sub][:-1]) & (values[sub][1:] == values[sub][:-1]) & (conv[1:] == conv[:-1])
            dup[sub[1:][same]] = True
        keep = np.append(~dup, True)  # values keep one trailing sentinel for `np.ufunc.reduceat`
        return cls(key[~dup], np.append(values, 0.0)[keep], span, lb, distinct, n_feat, int(dup.sum()))

    def time_at(self, position: np.ndarray) -> np.ndarray:
        """Chart time (us) of the rows at `position`."""
        rel = self.keys[position] % self.span
        if self.distinct_times is not None:
            return self.distinct_times[rel]
        stay = self.keys[position] // self.span // self.n_feat
        return self.lb[stay] + rel

    def query(self, stay_idx: np.ndarray, feat: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per query: the number of rows of (stay, feat) charted strictly before `t`, as a global
        position: rows `[first of group, result)` are before `t`."""
        if self.distinct_times is None:
            rel = np.clip(t - self.lb[stay_idx], 0, self.span - 1)
        else:
            rel = np.searchsorted(self.distinct_times, t, side="left")
        keys = (stay_idx * self.n_feat + feat) * self.span + rel
        return np.searchsorted(self.keys, keys, side="left")

    def group_of(self, position: np.ndarray) -> np.ndarray:
        return self.keys[position] // self.span


def window_values(spec: CohortSpec, chart: ChartIndex, decisions: pl.DataFrame) -> np.ndarray:
    """The (unfilled) measurement features at each decision: float64 [n_decisions, F], NaN = missing.

    `decisions`: `stay_idx`, `decision_us`, one row per decision (the output's row order).
    """
    n_feat, n_dec = len(spec.features), decisions.height
    out = np.full((n_dec, n_feat), np.nan)
    if n_dec == 0 or chart.keys.size == 0:
        return out
    step = hours_to_us(spec.time.step_hours)
    carry = np.array([hours_to_us(f.max_carry_hours) for f in spec.features], dtype=np.int64)
    stay, d, target = _queries(decisions["stay_idx"].cast(pl.Int64).to_numpy(),
                               decisions[DECISION].to_numpy().astype(np.int64), n_feat)
    feat = target % n_feat
    i_last = chart.query(stay, feat, d) - 1  # the last valid value strictly before d
    found = i_last >= 0
    found[found] = chart.group_of(i_last[found]) == stay[found] * n_feat + feat[found]
    age = np.where(found, d - chart.time_at(np.maximum(i_last, 0)), 0)
    j = (age - 1) // step  # its window [d - (j+1) step, d - j step), counted back from d
    found &= (j == 0) | (age <= carry[feat])
    q = np.flatnonzero(found)
    lo = d[q] - (j[q] + 1) * step
    first, end = chart.query(stay[q], feat[q], lo), i_last[q] + 1
    kinds = np.array([AGGREGATIONS.index(f.aggregation) for f in spec.features])[feat[q]]
    result = np.empty(q.size)
    for kind, name in enumerate(AGGREGATIONS):
        sel = np.flatnonzero(kinds == kind)
        if not sel.size:
            continue
        sel = sel[np.argsort(first[sel], kind="stable")]  # ordered ranges keep reduceat linear
        s, e = first[sel], end[sel]
        if name == "last":
            result[sel] = chart.values[e - 1]
        elif name == "count":
            result[sel] = (e - s).astype(np.float64)
        else:
            ufunc = {"mean": np.add, "sum": np.add, "min": np.minimum, "max": np.maximum}[name]
            reduced = ufunc.reduceat(chart.values, np.stack([s, e], axis=1).ravel())[::2]  # e < len
            result[sel] = reduced / (e - s) if name == "mean" else reduced
    out.reshape(-1)[target[q]] = result
    return out


def _queries(stay: np.ndarray, d: np.ndarray, n_feat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query per (decision, feature), ordered by (stay, feature, time) so that the chart
    lookups are sorted searches. Returns stay, time and the flat output index `row * F + feat`."""
    order = np.lexsort((d, stay))
    stay_s = stay[order]
    starts = np.flatnonzero(np.r_[True, stay_s[1:] != stay_s[:-1]])
    sizes = np.diff(np.r_[starts, stay_s.size])
    per_block = sizes * n_feat
    block = np.repeat(np.arange(starts.size), per_block)
    within = np.arange(int(per_block.sum())) - np.repeat(np.cumsum(per_block) - per_block, per_block)
    feat, local = within // sizes[block], within % sizes[block]
    row = order[starts[block] + local]
    return stay[row], d[row], row * n_feat + feat


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
    ).select(charted_state_names(spec))


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
    `decision_time` (datetime), in any order. Returns `stay_id`, `decision_time` and the charted
    state columns (`charted_state_names(spec)`; treatment-history features come from the doses
    given, `cohort.treatment_history`) in the order of `decision_times`. Without `fill_values`,
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
    usable = rows.filter(pl.col("stay_idx").is_not_null() & pl.col("in_time") & pl.col("in_range"))
    chart = ChartIndex.build(usable, anchors["lb_us"].to_numpy(), len(spec.features))
    values = window_values(spec, chart, decisions)
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
