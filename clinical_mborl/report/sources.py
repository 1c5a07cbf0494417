"""Report inputs read from the lower stages' artifacts (behaviour, dynamics, policies).

>>> calibration_from_behavior({"out_of_fold": {"nll": 1.1, "ece": 0.02, "reliability": []}}).metrics
{'nll': 1.1, 'ece': 0.02}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clinical_mborl.cohort.transitions import TransitionSet
from clinical_mborl.core.policy import Policy
from clinical_mborl.report.collect import dose_input, review_cases, trajectory_input
from clinical_mborl.report.inputs import (
    CalibrationInput,
    CoveragePoint,
    DoseInput,
    DynamicsInput,
    HorizonPoint,
    ReliabilityBin,
    TrajectoryInput,
)

SCALAR = (int, float)


def _scalars(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, SCALAR) and not isinstance(v, bool)}


def _first_bins(d: Any) -> list[dict[str, Any]] | None:
    """The first reliability-bin list found under a key starting with 'reliability'."""
    if isinstance(d, Mapping):
        for k, v in d.items():
            if str(k).startswith("reliability") and isinstance(v, list):
                return v
        for v in d.values():
            found = _first_bins(v)
            if found is not None:
                return found
    return None


def calibration_from_behavior(calibration: Mapping[str, Any]) -> CalibrationInput:
    """`ClinicianPolicy.calibration` -> out-of-fold metrics and top-1 (or treated) reliability bins."""
    oof = calibration.get("out_of_fold", calibration)
    bins = []
    for b in _first_bins(oof) or []:
        conf = b.get("mean_confidence", b.get("mean_predicted"))
        if b.get("count") and conf is not None and b.get("observed") is not None:
            bins.append(ReliabilityBin(mean_predicted=float(conf), observed=float(b["observed"]), n=int(b["count"])))
    return CalibrationInput(metrics=_scalars(oof), bins=bins)


def dynamics_from_metrics(metrics: Mapping[str, Any]) -> DynamicsInput:
    """`DynamicsEnsemble.metrics` -> holdout NLL, spread coverage (mean over features), error vs horizon."""
    holdout = metrics.get("holdout", metrics)
    per_feature = [v for v in holdout.get("per_feature", {}).values() if isinstance(v, Mapping) and v.get("n")]
    coverage = []
    for nominal, key in ((0.5, "coverage_50"), (0.9, "coverage_90")):
        vals = [float(v[key]) for v in per_feature if isinstance(v.get(key), SCALAR)]
        if vals:
            coverage.append(CoveragePoint(nominal=nominal, observed=float(np.mean(vals))))
    horizon = [HorizonPoint(horizon=int(h["h"]), error=float(h["rmse"]))
               for h in holdout.get("horizon_rmse", []) if h.get("rmse") is not None]
    flat: dict[str, Any] = {}
    for part in ("termination", "outcome", "reward"):
        for k, v in _scalars(holdout.get(part, {})).items():
            flat[f"{part} {k}"] = v
    nll = holdout.get("state_nll_mean")
    return DynamicsInput(holdout_nll=float(nll) if isinstance(nll, SCALAR) and np.isfinite(nll) else None,
                         metrics=flat, coverage=coverage, horizon_error=horizon)


def policy_doses(policy: Policy, transitions: TransitionSet, split: str = "test") -> DoseInput | None:
    """Greedy recommendations vs recorded clinician actions on `split` (discrete action spaces only)."""
    if transitions.manifest.action_space.kind != "discrete":
        return None
    a = transitions.split(split).arrays(normalised=False)
    if len(a) == 0:
        return None
    recommended = np.asarray(policy.action_probabilities(a.states)).argmax(1)
    return dose_input(transitions.manifest.action_space, a.actions, recommended, split=split)


def review_trajectories(policy: Policy, transitions: TransitionSet, split: str = "test",
                        k: int = 1, shown: int = 6) -> list[TrajectoryInput]:
    """The most aggressive stays (recommended minus recorded dose level, mean over steps) and the most
    optimistic ones (Q(s0, recommended) minus the observed discounted return; Q-policies only)."""
    space = transitions.manifest.action_space
    rows = transitions.split(split)
    ep = rows.episodes(normalised=False)
    if ep.n_episodes == 0 or space.kind != "discrete":
        return []
    flat_rows = rows.arrays(normalised=False)
    died = np.zeros(ep.n_episodes, dtype=bool)
    np.logical_or.at(died, flat_rows.episode, flat_rows.died)
    flat = ep.states[ep.mask]
    rec = np.zeros(ep.mask.shape, dtype=np.int64)
    rec[ep.mask] = np.asarray(policy.action_probabilities(flat)).argmax(1)
    gap = (space.levels_of(rec.ravel()) - space.levels_of(ep.actions.ravel())).sum(1).reshape(ep.mask.shape)
    aggressive = np.where(ep.mask, gap, 0).sum(1) / np.maximum(ep.lengths, 1)
    optimism = np.full(ep.n_episodes, -np.inf)
    q_values = getattr(policy, "q_values", None)
    if callable(q_values):
        try:
            q0 = np.asarray(q_values(ep.states[:, 0]))
            discount = transitions.manifest.gamma ** np.arange(ep.mask.shape[1])
            observed = (ep.rewards * discount * ep.mask).sum(1)
            optimism = q0[np.arange(ep.n_episodes), rec[:, 0]] - observed
        except TypeError:
            pass
    picks = review_cases(aggressive, optimism, k=k)
    names, doses = list(transitions.feature_names), list(transitions.dose_columns)
    out = []
    for i, reason in picks:
        if reason == "most optimistic" and not np.isfinite(optimism[i]):
            continue
        n = int(ep.lengths[i])
        outcome = "died" if died[i] else "discharged" if ep.done[i] else "window ended"
        out.append(trajectory_input(ep.states[i, :n], names, ep.doses[i, :n], space.doses_of(rec[i, :n]), doses,
                                    transitions.manifest.step_hours, reason, outcome=outcome,  # type: ignore[arg-type]
                                    shown=names[:shown]))
    return out
