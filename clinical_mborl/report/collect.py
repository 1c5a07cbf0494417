"""Helpers that turn pipeline arrays into report inputs and gate evidence.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> rows = characteristics_from_transitions(make_toy_transitions(30, seed=0))
>>> sorted({r.split for r in rows})
['test', 'train', 'val']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from clinical_mborl.cohort.manifest import ActionSpaceInfo
from clinical_mborl.cohort.transitions import SPLITS, TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.explain.explanation import ExplanationSummary
from clinical_mborl.ope.results import IntervalChecks, OPEReport
from clinical_mborl.report.gate import (
    ConfoundingEvidence,
    ExplanationEvidence,
    GateEvidence,
    OverlapEvidence,
    PairedEstimate,
    SubgroupEvidence,
    SupportEvidence,
)
from clinical_mborl.report.inputs import (
    DoseDimensionInput,
    DoseInput,
    FeatureSummary,
    OPEEstimate,
    SubgroupResult,
    TrajectoryInput,
    TrajectoryStepInput,
)


def characteristics_from_transitions(ts: TransitionSet) -> list[FeatureSummary]:
    """Baseline (step 0) mean, SD, median and IQR of every state feature, per split."""
    units = {f.name: f.unit for f in ts.manifest.state_features}
    first = ts.frame.filter(pl.col("step") == 0)
    out = []
    for split in SPLITS:
        sub = first.filter(pl.col("split") == split)
        if sub.height == 0:
            continue
        for name in ts.feature_names:
            v = sub[name].to_numpy().astype(np.float64)
            q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
            out.append(FeatureSummary(split=split, feature=name, unit=units[name], n_stays=sub.height,
                                      mean=float(v.mean()), sd=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                                      median=float(med), q1=float(q1), q3=float(q3)))
    return out


def dose_input(action_space: ActionSpaceInfo, clinician_actions: np.ndarray, policy_actions: np.ndarray,
               split: str = "test") -> DoseInput:
    """Per-level step counts and agreement for joint discrete actions (clinician observed vs recommended)."""
    if action_space.kind != "discrete":
        raise InputError("dose_input: expected a discrete action space; bin continuous doses first.")
    clin, pol = np.asarray(clinician_actions), np.asarray(policy_actions)
    if clin.shape != pol.shape or clin.ndim != 1:
        raise InputError(f"dose_input: action arrays must be 1-D and aligned; got {clin.shape} and {pol.shape}.")
    lc, lp = action_space.levels_of(clin), action_space.levels_of(pol)
    dims = []
    for j, d in enumerate(action_space.dimensions):
        n = int(d.n_levels or 1)
        dims.append(DoseDimensionInput(name=d.name, unit=d.unit, median_dose=d.median_dose,
                                       clinician_counts=np.bincount(lc[:, j], minlength=n).tolist(),
                                       policy_counts=np.bincount(lp[:, j], minlength=n).tolist()))
    return DoseInput(split=split, dimensions=dims, n_steps=len(clin),
                     n_exact_agreement=int((lc == lp).all(1).sum()),
                     n_within_one_level=int((np.abs(lc - lp) <= 1).all(1).sum()))


def review_cases(aggressiveness: np.ndarray, optimism: np.ndarray, k: int = 2) -> list[tuple[int, str]]:
    """Episode indices for clinician review: the k most aggressive, then the k most optimistic (distinct).

    Args:
        aggressiveness: per episode, e.g. mean (recommended - clinician) dose level over steps.
        optimism: per episode, model-predicted value minus the observed return.
    """
    picked: list[tuple[int, str]] = []
    for scores, reason in ((aggressiveness, "most aggressive"), (optimism, "most optimistic")):
        taken = 0
        for i in np.argsort(-np.asarray(scores), kind="stable"):
            if taken == k:
                break
            if int(i) not in {p[0] for p in picked}:
                picked.append((int(i), reason))
                taken += 1
    return picked


def trajectory_input(states_raw: np.ndarray, feature_names: Sequence[str], clinician_doses: np.ndarray,
                     recommended_doses: np.ndarray, dose_names: Sequence[str], step_hours: float,
                     reason: Literal["most aggressive", "most optimistic", "other"], *,
                     outcome: str | None = None, shown: Sequence[str] | None = None,
                     behavior_prob_of_recommended: np.ndarray | None = None) -> TrajectoryInput:
    """One stay's steps (clinical units) for the review section; carries no identifier."""
    cols = [feature_names.index(n) for n in (shown or feature_names)]
    steps = []
    for t in range(len(states_raw)):
        steps.append(TrajectoryStepInput(
            hour=float(t * step_hours),
            state={feature_names[j]: float(states_raw[t, j]) for j in cols},
            clinician_dose={n: float(clinician_doses[t, j]) for j, n in enumerate(dose_names)},
            recommended_dose={n: float(recommended_doses[t, j]) for j, n in enumerate(dose_names)},
            clinician_probability_of_recommended=None if behavior_prob_of_recommended is None
            else float(behavior_prob_of_recommended[t])))
    return TrajectoryInput(reason=reason, outcome=outcome, steps=steps)


def paired_from_ope(estimates: Sequence[OPEEstimate]) -> list[PairedEstimate]:
    """Gate evidence from the paired-difference entries of ope.json (lower bound required)."""
    out = []
    for e in estimates:
        if e.target != "paired_difference":
            continue
        if e.lower_bound is None:
            raise InputError(f"ope: paired difference of '{e.estimator}' has no lower_bound; the gate needs one-sided bounds.")
        out.append(PairedEstimate(estimator=e.estimator, difference=e.value, ci_low=e.ci_low, ci_high=e.ci_high,
                                  lower_bound=e.lower_bound))
    return out


def ope_inputs(report: OPEReport) -> list[OPEEstimate]:
    """The clinician, every estimator and every paired difference of an `ope.json`, as report inputs."""
    split = ",".join(report.settings.eval_splits)
    out = []
    for target, e in [("clinician", report.clinician), *(("policy", e) for e in report.estimates)]:
        out.append(OPEEstimate(estimator=e.estimator, target=target, value=e.value,
                               ci_low=e.ci_low, ci_high=e.ci_high, level=e.level, method=e.method,
                               n_patients=e.n_patients, ess=e.ess, lower_bound=e.lower_bound, split=split,
                               diagnostics={**e.diagnostics, **_interval_checks(e)}))
    for d in report.differences:
        out.append(OPEEstimate(estimator=d.estimator, target="paired_difference", value=d.value, ci_low=d.ci_low,
                               ci_high=d.ci_high, level=d.level, method=d.method, n_patients=d.n_patients,
                               lower_bound=d.lower_bound, split=split,
                               diagnostics={"reference": d.reference, "n_resamples": d.n_resamples,
                                            "n_undefined_resamples": d.n_undefined_resamples, **_interval_checks(d)}))
    for sb in report.sensitivity:  # FQE's confounding bounds: shown, never gate evidence
        for e, d in ((sb.lower, sb.lower_difference), (sb.upper, sb.upper_difference)):
            side = e.estimator.removeprefix("fqe_")
            out.append(OPEEstimate(
                estimator=f"fqe, {side} bound at Lambda {sb.lam:g}", target="policy", value=e.value,
                ci_low=e.ci_low, ci_high=e.ci_high, level=e.level, method=e.method, n_patients=e.n_patients,
                lower_bound=e.lower_bound, split=split,
                diagnostics={"what": f"FQE if the clinicians' odds of each action differ from the clinician "
                                     f"model's by at most {sb.lam:g} (unobserved confounding)",
                             "paired_difference": d.value, "paired_difference_lower_bound": d.lower_bound}))
    return out


def _interval_checks(e: IntervalChecks) -> dict[str, str | int]:
    """What was done to keep an interval inside the return range and around its estimate (only
    when something was)."""
    out: dict[str, str | int] = {}
    if e.value_projected or e.n_projected_resamples:
        out["projected_onto_return_range"] = " and ".join(
            part for part, moved in (("estimate", e.value_projected), ("resamples", e.n_projected_resamples > 0))
            if moved)
        out["n_projected_resamples"] = e.n_projected_resamples
    if e.interval_extended:
        out["interval_extended"] = "widened to contain the estimate"
    return out


def evidence_from_ope(report: OPEReport, subgroups: Sequence[SubgroupResult] = (),
                      explanation: ExplanationSummary | None = None) -> GateEvidence:
    """Gate evidence from `ope.json` (+ subgroup results and the explanation summary).

    Overlap comes from the first importance-weighted estimator's diagnostics; support is
    1 - `support_share_outside` at the OPE support threshold (None for continuous doses).
    """
    paired = [PairedEstimate(estimator=d.estimator, difference=d.value, ci_low=d.ci_low, ci_high=d.ci_high,
                             lower_bound=d.lower_bound)
              for d in report.differences if None not in (d.value, d.ci_low, d.ci_high, d.lower_bound)]
    weighted = next((e for e in report.estimates if e.ess is not None), None)
    diag = weighted.diagnostics if weighted is not None else {}
    share = diag.get("max_weight_share")
    overlap = OverlapEvidence(ess=float(weighted.ess or 0.0) if weighted else 0.0,
                              max_weight_share=float(share) if isinstance(share, int | float) else 1.0)
    outside = diag.get("support_share_outside")
    support = None if not isinstance(outside, int | float) else SupportEvidence(
        threshold=report.settings.support_threshold, share_in_support=1.0 - float(outside))
    expl = None if explanation is None else ExplanationEvidence(
        completeness_passed=explanation.completeness.passed, sanity_passed=explanation.sanity.passed,
        sanity_spearman=explanation.sanity.full_randomisation_spearman)
    confounding = [ConfoundingEvidence(lam=b.lam, lower_bound=b.lower_difference.lower_bound)
                   for b in report.sensitivity if b.lower_difference.lower_bound is not None]
    return GateEvidence(
        split=",".join(report.settings.eval_splits), level=report.settings.level, paired=paired,
        overlap=overlap, support=support, explanation=expl, confounding=confounding,
        subgroups=[SubgroupEvidence(attribute=g.attribute, level=g.level, n_patients=g.n_patients,
                                    estimator=g.estimator, difference=g.difference, lower_bound=g.lower_bound)
                   for g in subgroups])
