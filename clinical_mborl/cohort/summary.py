"""Bookkeeping of `cohort build`: dropped-row counts, fitted fill values and normalisation,
and the `CohortManifest`.

Fill values and normalisation are fitted on the train split only: measurement features get the
train median of their observed (not imputed) step values (or zero when the spec says `zero`),
`age_years` and `weight_kg` the train median, `sex_female` the train share of women among
stays of known sex (0.5 if none is known).
Normalisation: `zscore` (x - mean) / std, `log_zscore` on log1p(x), population std (std 0 -> 1);
missing indicators are not transformed.

>>> from clinical_mborl.cohort.measurements import _example_spec
>>> train = pl.DataFrame({"lactate_mmol_l": [1.0, None, 3.0], "map_mmhg": [60.0, 70.0, None]})
>>> fit_fill_values(_example_spec(), train)
{'lactate_mmol_l': 2.0, 'map_mmhg': 65.0}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from clinical_mborl.cohort import features
from clinical_mborl.cohort.manifest import (
    ActionSpaceInfo,
    ActionTiming,
    CohortManifest,
    DroppedRows,
    ExclusionStep,
    SplitCounts,
    StateFeatureInfo,
)
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.splits import SPLIT_NAMES
from clinical_mborl.core.errors import InputError

if TYPE_CHECKING:
    from clinical_mborl.cohort.build import EHRInput

STATIC_UNITS = {"age_years": "years", "sex_female": "1 = female", "weight_kg": "kg"}
INDICATOR_UNIT = "1 = imputed"


def count_dropped(
    spec: CohortSpec, rows: pl.DataFrame, n_total: int, excluded: np.ndarray
) -> tuple[list[tuple[str, str, int]], pl.DataFrame]:
    """Count each spec measurement row under its first reason to be dropped; return the counts
    (table, reason, count) and the remaining rows (exact duplicates are counted later, by
    `features.ChartIndex`).

    Reasons in order: variable_not_in_spec, unknown_stay, excluded_stay (`excluded[stay_idx]`),
    outside_window (before the lookback start or at/after the stay end),
    out_of_valid_range:<feature>, then exact_duplicate.
    """
    col = pl.col
    known = col("stay_idx").is_not_null()
    excl = known & pl.lit(pl.Series(np.asarray(excluded, dtype=bool))).gather(col("stay_idx")).fill_null(False)
    live = known & ~excl
    flags = rows.select(
        (~known).sum().alias("unknown_stay"), excl.sum().alias("excluded_stay"),
        (live & ~col("in_time")).sum().alias("outside_window"),
    ).row(0, named=True)
    dropped = [("measurements", "variable_not_in_spec", n_total - rows.height)]
    dropped += [("measurements", r, int(n)) for r, n in flags.items()]
    out_of_range = rows.filter(live & col("in_time") & ~col("in_range")).group_by("feat").len()
    per_feature = dict(out_of_range.iter_rows())
    dropped += [("measurements", f"out_of_valid_range:{f.name}", int(per_feature.get(i, 0)))
                for i, f in enumerate(spec.features)]
    kept = rows.filter(live & col("in_time") & col("in_range"))
    return dropped, kept


def fit_fill_values(spec: CohortSpec, train_states: pl.DataFrame) -> dict[str, float]:
    """Fill value per measurement and static feature, from the unfilled train-split states."""
    fills: dict[str, float] = {}
    for f in spec.features:
        fills[f.name] = 0.0 if f.fill == "zero" else _statistic(train_states[f.name], "median", f.name)
    for s in spec.static_features:
        if s.name == "sex_female":  # "U" is a valid answer: an all-unknown train split gets 0.5
            known = train_states[s.name].drop_nulls()
            fills[s.name] = float(known.mean()) if known.len() else 0.5  # type: ignore[arg-type]
        else:
            fills[s.name] = _statistic(train_states[s.name], "median", s.name)
    return fills


def _statistic(values: pl.Series, how: str, name: str) -> float:
    observed = values.drop_nulls()
    if observed.len() == 0:
        raise InputError(
            f"feature {name}: no observed value in the train split, so its fill value cannot be fitted; "
            "expected at least one. Check the variable names and units the spec reads, or use `fill: zero`."
        )
    return float(observed.median() if how == "median" else observed.mean())  # type: ignore[arg-type]


def state_feature_infos(
    spec: CohortSpec, train: pl.DataFrame, fills: dict[str, float]
) -> list[StateFeatureInfo]:
    """Names, units and train-fitted normalisation of every state column, in state order."""
    infos: list[StateFeatureInfo] = []
    specs = {f.name: ("measurement", f.unit, f.transform) for f in spec.features}
    specs |= {s.name: ("static", STATIC_UNITS[s.name], s.transform) for s in spec.static_features}
    units = {a.name: a.unit for a in spec.actions}
    specs |= {t.name: ("treatment", units[t.action], t.transform) for t in spec.treatment_features}
    for name in features.state_names(spec):
        kind, unit, transform = specs.get(name, ("indicator", INDICATOR_UNIT, "none"))
        mean, std = 0.0, 1.0
        if transform != "none" and train.height:
            x = train[name].to_numpy().astype(np.float64)
            if transform == "log_zscore":
                x = np.log1p(np.clip(x, 0.0, None))
            mean, std = float(x.mean()), float(x.std())
            std = std if std > 0 else 1.0
        infos.append(StateFeatureInfo(name=name, unit=unit, kind=kind, transform=transform,  # type: ignore[arg-type]
                                      mean=mean, std=std, fill_value=fills.get(name)))
    return infos


def split_counts(frame: pl.DataFrame, stays: pl.DataFrame) -> dict[str, SplitCounts]:
    """Per split: patients, stays, transitions and deaths (stays whose outcome is death)."""
    out = {}
    for name in SPLIT_NAMES:
        rows = frame.filter(pl.col("split") == name)
        members = stays.filter(pl.col("split") == name)
        out[name] = SplitCounts(
            patients=members["patient_key"].n_unique(), stays=members.height,
            transitions=rows.height, deaths=int(members["died_in_hospital"].sum()),
        )
    return out


def make_manifest(
    spec: CohortSpec,
    inputs: EHRInput,
    frame: pl.DataFrame,
    infos: list[StateFeatureInfo],
    space: ActionSpaceInfo,
    stays: pl.DataFrame,
    flow: list[ExclusionStep],
    dropped: list[tuple[str, str, int]],
    missingness: dict[str, float],
    action_timing: list[tuple[str, int, float]],
) -> CohortManifest:
    """The manifest of a built cohort; `transitions_sha256` is filled in once the file is written.

    `stays`: the stay windows with `excluded_by`, and `split` for the included stays.
    """
    return CohortManifest(
        spec=spec,
        spec_hash=spec.spec_hash(),
        input_files=dict(sorted(inputs.source_files.items())),
        transitions_sha256="",
        state_features=infos,
        action_space=space,
        gamma=spec.gamma,
        step_hours=spec.time.step_hours,
        n_steps=spec.time.n_steps,
        counts=split_counts(frame, stays),
        stays_in=inputs.stays.height,
        exclusion_flow=flow,
        dropped_rows=[DroppedRows(table=t, reason=r, count=c) for t, r, c in dropped],
        missingness=missingness,
        action_timing=[ActionTiming(dimension=d, orders=n, share_after_first_hour=share)
                       for d, n, share in action_timing],
    )
