"""Treatment history for the OPE nuisance models: adjust the weights and the Q-model for it.

Clinicians titrate. Whether a vasopressor is given at step t depends on whether it ran at step
t-1, and whether another bolus is given depends on how much fluid has gone in already; neither is
in the cohort state. An importance weight built from pi_b(a_t | s_t) then multiplies per-step
marginals that ignore this persistence: a stay that was never treated gets prod_t pi_b(0 | s_t),
far below its real probability, and so far too much weight. The same hidden history (cumulative
fluid, running dose) also moves the outcome, so the cohort state alone does not satisfy
sequential ignorability (Murphy 2003; Robins' g-formula needs the treatment history).

The remedy used here is to condition the nuisance models on the observed treatment history
while the evaluated policy keeps acting on the cohort state:

- `prev_<dose>`: the dose given in the previous step (0 at step 0);
- `cum_<dose>`: the sum of the doses of all previous steps of the stay;
- `next_prev_<dose>` = this step's dose, `next_cum_<dose>` = `cum_<dose>` + this step's dose.

Both use log1p then a z-score fitted on the train split (doses are skewed). `with_treatment_history`
returns a `TransitionSet` whose state is the cohort state followed by these columns (in memory
only; the cohort on disk is unchanged), `fit_history_adjustment` fits the cross-fitted clinician
model pi_b(a | s, h) on it once per cohort, and `build_ope_data(..., history=...)` uses it for the
importance weights and feeds (s, h) to the Q-model.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> ts = with_treatment_history(make_toy_transitions(5, seed=0))
>>> ts.feature_names[-2:]
('cum_iv_fluid_ml', 'cum_norepinephrine_ug_kg_min')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.manifest import StateFeatureInfo
from clinical_mborl.cohort.transitions import NEXT_PREFIX
from clinical_mborl.core.errors import InputError

PREVIOUS, CUMULATIVE = "prev_", "cum_"


def history_names(transitions: TransitionSet) -> list[str]:
    """`prev_<dose>` then `cum_<dose>` for every action dimension."""
    return [p + d for p in (PREVIOUS, CUMULATIVE) for d in transitions.dose_columns]


def history_frame(transitions: TransitionSet) -> pl.DataFrame:
    """History columns (and their `next_` versions) in the row order of `transitions.frame`."""
    doses = list(transitions.dose_columns)
    frame = transitions.frame
    bad = {d: frame[d].is_null() | frame[d].is_nan() for d in doses}
    for d, flag in bad.items():
        if flag.any():
            rows = np.flatnonzero(flag.to_numpy())[:5].tolist()
            raise InputError(f"transitions: column '{d}' has missing doses (rows {rows}); treatment "
                             "history needs every step's dose. Rebuild the cohort.")
    order = pl.int_range(pl.len()).alias("_row")
    keyed = frame.select("stay_id", "step", *doses).with_columns(order).sort("stay_id", "step")
    gaps = keyed.select((pl.col("step") != pl.col("step").shift(1).over("stay_id") + 1)
                        & (pl.col("step").shift(1).over("stay_id").is_not_null()))
    if gaps.to_series().any():
        raise InputError("transitions: some stays skip a step; treatment history needs consecutive steps.")
    cols: list[pl.Expr] = []
    for d in doses:
        cum = pl.col(d).cum_sum().over("stay_id") - pl.col(d)
        prev = pl.col(d).shift(1).over("stay_id").fill_null(0.0)
        cols += [prev.alias(PREVIOUS + d), cum.alias(CUMULATIVE + d),
                 pl.col(d).alias(NEXT_PREFIX + PREVIOUS + d), (cum + pl.col(d)).alias(NEXT_PREFIX + CUMULATIVE + d)]
    names = history_names(transitions)
    out = keyed.with_columns(cols).sort("_row")
    return out.select(*names, *[NEXT_PREFIX + n for n in names])


def with_treatment_history(transitions: TransitionSet) -> TransitionSet:
    """The cohort with the history columns appended to the state (normalisation fitted on train)."""
    names = history_names(transitions)
    clash = [n for n in names if n in transitions.frame.columns]
    if clash:
        raise InputError(f"transitions: columns {clash} already exist; treatment history would overwrite them.")
    hist = history_frame(transitions)
    train = hist.filter(transitions.frame["split"] == "train")
    if train.height == 0:
        raise InputError("transitions: no train rows to fit the treatment-history normalisation on.")
    units = {d.name: d.unit for d in transitions.manifest.action_space.dimensions}
    infos = []
    for n in names:
        x = np.log1p(np.clip(train[n].to_numpy().astype(np.float64), 0.0, None))
        std = float(x.std())
        dose = n.removeprefix(PREVIOUS).removeprefix(CUMULATIVE)
        # kind "measurement": the manifest contract has no history kind; this manifest stays in memory
        infos.append(StateFeatureInfo(name=n, unit=units[dose], kind="measurement", transform="log_zscore",
                                      mean=float(x.mean()), std=std if std > 0 else 1.0))
    manifest = transitions.manifest.model_copy(
        update={"state_features": [*transitions.manifest.state_features, *infos]})
    return TransitionSet(pl.concat([transitions.frame, hist], how="horizontal"), manifest)


@dataclass(frozen=True)
class HistoryAdjustment:
    """The cohort with treatment history and the clinician model fitted on it.

    `base_manifest_hash` names the cohort it was built from (checked by `build_ope_data`).
    """

    transitions: TransitionSet
    behavior: ClinicianPolicy
    base_manifest_hash: str
    n_state: int

    def state_of(self, states: np.ndarray) -> np.ndarray:
        """The cohort-state part (what policies act on) of an augmented state array."""
        return states[:, : self.n_state]


def fit_history_adjustment(transitions: TransitionSet, config: BehaviorConfig | None = None) -> HistoryAdjustment:
    """Fit pi_b(a | s, h), cross-fitted and calibrated exactly as `fit_behavior` does for pi_b(a | s)."""
    augmented = with_treatment_history(transitions)
    behavior = fit_behavior(augmented, config)
    return HistoryAdjustment(augmented, behavior, transitions.manifest_hash, len(transitions.feature_names))
