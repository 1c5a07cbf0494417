"""The recommendation gate: pre-registered checks the evidence must clear before anything is recommended.

Checks (FIELD_NOTES.md, "Off-policy evaluation"): the evidence comes from the held-out split;
overlap (Kish ESS floor, maximum share of the total importance weight held by one patient);
support (share of recommended steps with clinician probability above a threshold); agreement of
the primary estimators on the paired difference against the clinician (else "inconclusive");
a one-sided lower bound of that paired difference above a pre-registered margin for every primary
estimator (HCPI style, Thomas et al. 2015), optionally also for FQE's bound under unobserved
confounding up to a pre-registered Lambda (`ope.sensitivity`), the same per subgroup (sex, age band, severity) of at
least a minimum size; and explanation sanity (completeness and parameter randomisation).

Status: "fail" if any check fails; otherwise "inconclusive" if any is inconclusive; else "pass".
Check details never contain patient counts (subgroup sizes are published, suppressed, elsewhere).

>>> cfg = GateConfig(primary_estimators=("wdr",), subgroup_attributes=(), require_explanation_sanity=False)
>>> ev = GateEvidence(split="test", level=0.95,
...     paired=[PairedEstimate(estimator="wdr", difference=0.1, ci_low=0.02, ci_high=0.2, lower_bound=0.03)],
...     overlap=OverlapEvidence(ess=120.0, max_weight_share=0.05),
...     support=SupportEvidence(threshold=0.01, share_in_support=0.97))
>>> evaluate_gate(ev, cfg).status
'pass'
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

import numpy as np
from pydantic import Field

from clinical_mborl.core.io import sha256_json
from clinical_mborl.core.models import StrictModel

CheckStatus = Literal["pass", "fail", "inconclusive", "not_evaluated"]
GateStatus = Literal["pass", "fail", "inconclusive"]


class GateConfig(StrictModel):
    """Pre-registered thresholds; fix them before looking at held-out results."""

    heldout_split: str = Field("test", description="Evidence must come from this patient-level split.")
    level: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence of the one-sided lower bounds (HCPI, Thomas et al. 2015).")
    primary_estimators: tuple[str, ...] = Field(("wdr", "fqe"), min_length=1, description="Estimators that must agree and clear the margin (WDR safe default, FQE ranks best: Tang & Wiens 2021).")
    ess_floor: float = Field(50.0, ge=0, description="Minimum Kish ESS = (sum w)^2 / sum w^2 of the patient weights.")
    max_weight_share: float = Field(0.2, gt=0, le=1, description="Maximum share of the total weight held by a single patient.")
    support_threshold: float = Field(0.01, gt=0, lt=1, description="A recommended step is in clinician support when pi_b(a|s) >= this.")
    min_support_share: float = Field(0.9, ge=0, le=1, description="Minimum share of recommended steps in clinician support.")
    margin: float = Field(0.0, description="The lower bound of (policy - clinician) must exceed this (reward units).")
    subgroup_attributes: tuple[str, ...] = Field(("sex", "age_band", "severity"), description="Attributes whose every level is checked.")
    subgroup_margin: float | None = Field(None, description="Margin per subgroup; None = the overall margin.")
    min_subgroup_size: int = Field(30, ge=1, description="Subgroups with fewer patients are not evaluated (or fail, see below).")
    small_subgroup_policy: Literal["not_evaluated", "fail"] = "not_evaluated"
    require_explanation_sanity: bool = Field(True, description="Completeness and parameter randomisation must pass (Adebayo et al. 2018).")
    confounding_lambda: float | None = Field(
        None, gt=1, description="If set, FQE's paired lower bound must also clear the margin under unobserved "
        "confounding of odds ratio up to this Lambda (the lower marginal-sensitivity bound in ope.json, from "
        "`evaluate --sensitivity`; `ope.sensitivity`). None: not checked.")


class PairedEstimate(StrictModel):
    """Paired difference policy - clinician from one estimator (same bootstrap resamples)."""

    estimator: str
    difference: float
    ci_low: float
    ci_high: float
    lower_bound: float = Field(description="One-sided lower bound at the evidence's level.")


class OverlapEvidence(StrictModel):
    ess: float = Field(ge=0)
    max_weight_share: float = Field(ge=0, le=1)


class SupportEvidence(StrictModel):
    threshold: float
    share_in_support: float = Field(ge=0, le=1)


class SubgroupEvidence(StrictModel):
    attribute: str
    level: str
    n_patients: int = Field(ge=0)
    estimator: str | None = Field(None, description="OPE estimator; only the gate's primary estimators are checked.")
    difference: float
    lower_bound: float


class ConfoundingEvidence(StrictModel):
    """FQE's paired lower bound under unobserved confounding of odds ratio up to `lam`."""

    lam: float = Field(gt=1)
    lower_bound: float


class ExplanationEvidence(StrictModel):
    completeness_passed: bool
    sanity_passed: bool
    sanity_spearman: float


class GateEvidence(StrictModel):
    """Everything the gate looks at, computed on one split at one confidence level."""

    split: str
    level: float
    paired: list[PairedEstimate]
    overlap: OverlapEvidence
    support: SupportEvidence | None = Field(description="None where no support measure exists (fails the check).")
    subgroups: list[SubgroupEvidence] = []
    explanation: ExplanationEvidence | None = None
    confounding: list[ConfoundingEvidence] = Field(default_factory=list, description="Sensitivity bounds, if computed.")


class GateCheck(StrictModel):
    name: str
    status: CheckStatus
    observed: float | str | None = None
    threshold: float | str | None = None
    detail: str


class GateDecision(StrictModel):
    passed: bool
    status: GateStatus
    checks: list[GateCheck]
    config: GateConfig
    evidence_sha256: str

    @property
    def reasons(self) -> list[str]:
        """One line per check that did not pass."""
        return [f"{c.name}: {c.status} ({c.detail})" for c in self.checks if c.status in ("fail", "inconclusive")]


def kish_ess(weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2."""
    w = np.asarray(weights, dtype=np.float64)
    denom = float((w**2).sum())
    return float(w.sum() ** 2 / denom) if denom > 0 else 0.0


def overlap_evidence(weights: np.ndarray) -> OverlapEvidence:
    """Per-patient importance weights -> ESS and the largest single share."""
    w = np.abs(np.asarray(weights, dtype=np.float64))
    total = float(w.sum())
    return OverlapEvidence(ess=kish_ess(w), max_weight_share=float(w.max() / total) if total > 0 else 1.0)


def support_evidence(behavior_prob_of_recommended: np.ndarray, threshold: float) -> SupportEvidence:
    """pi_b(recommended | s) per step -> share of steps at or above `threshold`."""
    p = np.asarray(behavior_prob_of_recommended, dtype=np.float64)
    return SupportEvidence(threshold=threshold, share_in_support=float((p >= threshold).mean()) if p.size else 0.0)


def _ok(flag: bool) -> CheckStatus:
    return "pass" if flag else "fail"


def _basic_checks(ev: GateEvidence, cfg: GateConfig) -> list[GateCheck]:
    o, s = ev.overlap, ev.support
    if s is None:
        support = GateCheck(name="support", status="fail", threshold=cfg.min_support_share,
                            detail="no support evidence (share of recommended steps in clinician support)")
    else:
        support = GateCheck(
            name="support", status=_ok(s.threshold >= cfg.support_threshold and s.share_in_support >= cfg.min_support_share),
            observed=round(s.share_in_support, 4), threshold=cfg.min_support_share,
            detail=f"share of recommended steps with clinician probability >= {s.threshold} "
                   f"(pre-registered threshold {cfg.support_threshold})")
    return [
        GateCheck(name="held-out split", status=_ok(ev.split == cfg.heldout_split), observed=ev.split,
                  threshold=cfg.heldout_split, detail="evidence must come from the pre-registered held-out split"),
        GateCheck(name="confidence level", status=_ok(ev.level >= cfg.level), observed=ev.level, threshold=cfg.level,
                  detail="lower bounds computed at least at the pre-registered level"),
        GateCheck(name="ESS floor", status=_ok(o.ess >= cfg.ess_floor), observed=round(o.ess, 2),
                  threshold=cfg.ess_floor, detail="Kish effective sample size of patient weights >= floor"),
        GateCheck(name="max weight share", status=_ok(o.max_weight_share <= cfg.max_weight_share),
                  observed=round(o.max_weight_share, 4), threshold=cfg.max_weight_share,
                  detail="largest single-patient share of the total weight <= maximum"),
        support,
    ]


def _estimator_checks(ev: GateEvidence, cfg: GateConfig) -> list[GateCheck]:
    by_name = {p.estimator: p for p in ev.paired}
    missing = [e for e in cfg.primary_estimators if e not in by_name]
    if missing:
        return [GateCheck(name="primary estimators present", status="fail", observed=", ".join(sorted(by_name)),
                          threshold=", ".join(cfg.primary_estimators), detail=f"missing estimates: {', '.join(missing)}")]
    prim = [by_name[e] for e in cfg.primary_estimators]
    overlap = all(a.ci_low <= b.ci_high and b.ci_low <= a.ci_high for a, b in combinations(prim, 2))
    signs = {np.sign(p.difference) for p in prim}
    agree = overlap and len(signs) == 1
    checks = [GateCheck(
        name="estimator agreement", status="pass" if agree else "inconclusive",
        observed="; ".join(f"{p.estimator} {p.difference:+.4g} [{p.ci_low:.4g}, {p.ci_high:.4g}]" for p in prim),
        threshold="intervals overlap and same sign",
        detail="primary estimators agree on the paired difference" if agree else
               ("paired-difference intervals do not overlap" if not overlap else "paired differences differ in sign"),
    )]
    for p in prim:
        checks.append(GateCheck(name=f"margin ({p.estimator})", status=_ok(p.lower_bound > cfg.margin),
                                observed=round(p.lower_bound, 6), threshold=cfg.margin,
                                detail=f"one-sided {ev.level:.0%} lower bound of (policy - clinician) > margin"))
    return checks


def _subgroup_checks(ev: GateEvidence, cfg: GateConfig) -> list[GateCheck]:
    margin = cfg.margin if cfg.subgroup_margin is None else cfg.subgroup_margin
    checks = []
    for attr in cfg.subgroup_attributes:
        groups = [g for g in ev.subgroups if g.attribute == attr
                  and (g.estimator is None or g.estimator in cfg.primary_estimators)]
        if not groups:
            checks.append(GateCheck(name=f"subgroups ({attr})", status="fail", threshold=margin,
                                    detail="no subgroup evidence for this pre-registered attribute"))
        for g in groups:
            name = f"subgroup {attr}={g.level}" + (f" ({g.estimator})" if g.estimator else "")
            if g.n_patients < cfg.min_subgroup_size:
                status: CheckStatus = "fail" if cfg.small_subgroup_policy == "fail" else "not_evaluated"
                checks.append(GateCheck(name=name, status=status, threshold=margin,
                                        detail=f"fewer patients than the pre-registered minimum of {cfg.min_subgroup_size}"))
                continue
            checks.append(GateCheck(name=name, status=_ok(g.lower_bound > margin), observed=round(g.lower_bound, 6),
                                    threshold=margin, detail="subgroup lower bound of (policy - clinician) > margin"))
    return checks


def _explanation_check(ev: GateEvidence, cfg: GateConfig) -> list[GateCheck]:
    if not cfg.require_explanation_sanity:
        return []
    e = ev.explanation
    if e is None:
        return [GateCheck(name="explanation sanity", status="fail", detail="no explanation evidence")]
    return [GateCheck(name="explanation sanity", status=_ok(e.completeness_passed and e.sanity_passed),
                      observed=round(e.sanity_spearman, 4),
                      detail=f"IG completeness {'passed' if e.completeness_passed else 'failed'}; "
                             f"parameter randomisation {'passed' if e.sanity_passed else 'failed'}")]


def _confounding_check(ev: GateEvidence, cfg: GateConfig) -> list[GateCheck]:
    lam = cfg.confounding_lambda
    if lam is None:
        return []
    name = f"margin under confounding (Lambda {lam:g})"
    found = [c for c in ev.confounding if abs(c.lam - lam) <= 1e-9 * lam]
    if not found:
        return [GateCheck(name=name, status="fail", threshold=cfg.margin,
                          detail=f"no sensitivity bound at Lambda {lam:g}; run `clinical-mborl evaluate` with "
                                 f"--sensitivity {lam:g}")]
    lb = found[0].lower_bound
    return [GateCheck(name=name, status=_ok(lb > cfg.margin), observed=round(lb, 6), threshold=cfg.margin,
                      detail=f"FQE's one-sided {ev.level:.0%} lower bound of (policy - clinician) > margin even if "
                             f"the clinicians' odds of each dose differ from the clinician model's by up to {lam:g}")]


def evaluate_gate(evidence: GateEvidence, config: GateConfig) -> GateDecision:
    """Run every check; the decision lists each with its numbers."""
    checks = (_basic_checks(evidence, config) + _estimator_checks(evidence, config)
              + _confounding_check(evidence, config) + _subgroup_checks(evidence, config)
              + _explanation_check(evidence, config))
    statuses = {c.status for c in checks}
    status: GateStatus = "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    return GateDecision(passed=status == "pass", status=status, checks=checks, config=config,
                        evidence_sha256=sha256_json(evidence.model_dump(mode="json")))
