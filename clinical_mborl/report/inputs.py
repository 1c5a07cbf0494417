"""Typed inputs of the audit report: what `pipeline.py` hands to `build_audit_report`.

Counts here are raw ints; the builder suppresses them (1-10 -> "<11", with complements) before
anything is published. No field takes an identifier: trajectories are anonymous and get labels
("Case A", ...) from the builder.

Wiring (pipeline):
    ReportInputs(
        policy_name=..., algorithm="morel", cohort=ts.manifest,
        characteristics=characteristics_from_transitions(ts),
        calibration=CalibrationInput(metrics=behavior_metrics, bins=[...]),
        dynamics=DynamicsInput(holdout_nll=..., coverage=[...], horizon_error=[...]),
        doses=dose_input(ts.manifest.action_space, clinician_actions, policy_actions, split="test"),
        ope=[OPEEstimate(**entry) for entry in ope_json_entries],
        gate=evaluate_gate(evidence, gate_config), explanation=explanation.summary,
        subgroups=[...], trajectories=[...], sensitivity=[...],
        reproducibility=ReproducibilityInput(policy=fingerprint_policy(p), cohort=fingerprint_cohort(c), ...),
    )
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from clinical_mborl.cohort.manifest import CohortManifest
from clinical_mborl.core.models import StrictModel
from clinical_mborl.explain.explanation import ExplanationSummary
from clinical_mborl.report.fingerprint import CohortFingerprint, PolicyFingerprint
from clinical_mborl.report.gate import GateDecision

DEFAULT_USERS = "ICU clinicians and a clinical review board auditing a candidate dosing policy."


class IntendedUse(StrictModel):
    """DECIDE-AI / TRIPOD+AI: who uses the recommendations, for whom, where, and what they must not do."""

    purpose: str = ("Decision support for IV fluid and vasopressor dosing in adult ICU patients with "
                    "sepsis, evaluated retrospectively; recommendations are reviewed by a clinician.")
    users: str = DEFAULT_USERS
    population: str = "Adult ICU stays meeting the cohort specification's inclusion criteria."
    setting: str = "Retrospective evaluation on routinely collected EHR data; not validated prospectively."
    not_for: list[str] = Field(default_factory=lambda: [
        "autonomous dosing without clinician review",
        "patients outside the cohort definition (e.g. paediatric, other diagnoses)",
        "use at a site whose data were not part of the evaluation without local re-evaluation",
    ])


class FeatureSummary(StrictModel):
    """Baseline (first decision step) distribution of one feature in one split."""

    split: str
    feature: str
    unit: str
    n_stays: int = Field(ge=0)
    mean: float
    sd: float
    median: float
    q1: float
    q3: float


class ReliabilityBin(StrictModel):
    """Clinician-model calibration bin: mean predicted probability vs observed frequency."""

    mean_predicted: float = Field(ge=0, le=1)
    observed: float = Field(ge=0, le=1)
    n: int = Field(ge=0)


class CalibrationInput(StrictModel):
    metrics: dict[str, Any] = Field(default_factory=dict, description="e.g. brier, ece, log_loss (cross-fitted, out-of-fold).")
    bins: list[ReliabilityBin] = Field(default_factory=list)


class CoveragePoint(StrictModel):
    nominal: float = Field(ge=0, le=1)
    observed: float = Field(ge=0, le=1)


class HorizonPoint(StrictModel):
    horizon: int = Field(ge=1, description="Rollout steps.")
    error: float = Field(ge=0, description="RMSE of the normalised state after `horizon` model steps.")


class DynamicsInput(StrictModel):
    holdout_nll: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    coverage: list[CoveragePoint] = Field(default_factory=list, description="Calibration of the predicted spread.")
    horizon_error: list[HorizonPoint] = Field(default_factory=list)


class DoseDimensionInput(StrictModel):
    """Steps per dose level for the clinician (observed) and the policy (recommended)."""

    name: str
    unit: str
    median_dose: list[float] | None = None
    clinician_counts: list[int]
    policy_counts: list[int]


class DoseInput(StrictModel):
    split: str = "test"
    dimensions: list[DoseDimensionInput]
    n_steps: int = Field(ge=0)
    n_exact_agreement: int = Field(ge=0, description="Steps where every dimension's level matches.")
    n_within_one_level: int = Field(ge=0, description="Steps where every dimension is within one level.")


class OPEEstimate(StrictModel):
    """One entry of ope.json (CONTRACTS.md section 5); undefined numbers are None.

    `collect.ope_inputs(OPEReport)` converts the OPE stage's report into these.
    """

    estimator: str
    target: Literal["policy", "clinician", "paired_difference"] = "policy"
    value: float | None
    ci_low: float | None
    ci_high: float | None
    level: float = 0.95
    method: str = "patient bootstrap"
    n_patients: int = Field(ge=0)
    ess: float | None = None
    lower_bound: float | None = None
    split: str = "test"
    diagnostics: dict[str, Any] = Field(default_factory=dict)


class SubgroupResult(StrictModel):
    """Paired difference (policy - clinician) within one subgroup level."""

    attribute: str
    level: str
    n_patients: int = Field(ge=0)
    estimator: str
    difference: float
    ci_low: float
    ci_high: float
    lower_bound: float
    ess: float | None = None


class TrajectoryStepInput(StrictModel):
    hour: float
    state: dict[str, float] = Field(description="Selected features in clinical units.")
    clinician_dose: dict[str, float]
    recommended_dose: dict[str, float]
    clinician_probability_of_recommended: float | None = None


class TrajectoryInput(StrictModel):
    """One stay shown for clinician review, without any identifier."""

    reason: Literal["most aggressive", "most optimistic", "other"]
    note: str = ""
    outcome: str | None = None
    steps: list[TrajectoryStepInput]


class SensitivityRow(StrictModel):
    """One re-run with another seed or setting."""

    setting: str
    seed: int
    estimator: str
    difference: float
    ci_low: float
    ci_high: float
    lower_bound: float
    gate_status: str | None = None


class ReproducibilityInput(StrictModel):
    policy: PolicyFingerprint
    cohort: CohortFingerprint
    configs: dict[str, Any] = Field(default_factory=dict)
    seeds: dict[str, int] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    git_sha: str | None = None
    commands: list[str] = Field(default_factory=list)


class ReportInputs(StrictModel):
    """Everything the audit report is built from."""

    title: str = "Audit report: learned dosing policy"
    policy_name: str
    algorithm: str
    policy_description: str = ""
    intended_use: IntendedUse = IntendedUse()
    cohort: CohortManifest
    characteristics: list[FeatureSummary] = Field(default_factory=list)
    calibration: CalibrationInput | None = None
    dynamics: DynamicsInput | None = None
    doses: DoseInput | None = None
    ope: list[OPEEstimate] = Field(default_factory=list)
    gate: GateDecision
    explanation: ExplanationSummary | None = None
    subgroups: list[SubgroupResult] = Field(default_factory=list)
    subgroup_split: str = "test"
    trajectories: list[TrajectoryInput] = Field(default_factory=list)
    sensitivity: list[SensitivityRow] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list, description="Added to the standard limitations.")
    reproducibility: ReproducibilityInput
