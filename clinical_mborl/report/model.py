"""`AuditReport`: the published report (report.json), already suppressed and pseudonymised.

Every count is typed `Count` (0, >= 11, "<11" or "*"), so a report holding an unsuppressed
count from 1 to 10 cannot be constructed. Sections follow TRIPOD+AI (2024) headings; `SECTIONS`
lists them in order with the anchor used in report.html.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clinical_mborl import __version__
from clinical_mborl.core.models import StrictModel
from clinical_mborl.explain.attributions import CompletenessCheck
from clinical_mborl.explain.explanation import FeatureImportance, TopFeature
from clinical_mborl.explain.sanity import RandomisationStep
from clinical_mborl.report.fingerprint import CohortFingerprint, PolicyFingerprint
from clinical_mborl.report.gate import GateDecision
from clinical_mborl.report.inputs import (
    CoveragePoint,
    HorizonPoint,
    IntendedUse,
    SensitivityRow,
    TrajectoryStepInput,
)
from clinical_mborl.report.suppress import Count

REPORT_SCHEMA_VERSION = 1

# (anchor, heading, TRIPOD+AI part)
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("summary", "Summary and gate decision", "Title and abstract"),
    ("intended-use", "Intended use", "Introduction"),
    ("cohort-flow", "Cohort flow", "Methods: data and participants"),
    ("characteristics", "Characteristics by split", "Results: participants"),
    ("calibration", "Clinician-model calibration", "Methods: analytical methods"),
    ("dynamics", "Dynamics model quality", "Methods: analytical methods"),
    ("doses", "Dose distributions and clinician agreement", "Results: model output"),
    ("ope", "Off-policy evaluation", "Results: model performance"),
    ("gate", "Gate checks", "Results: model performance"),
    ("subgroups", "Subgroups", "Results: fairness"),
    ("explanations", "Explanations and sanity checks", "Results: interpretability"),
    ("trajectories", "Trajectories for clinician review", "Results: clinical review"),
    ("sensitivity", "Sensitivity to seeds and settings", "Results: robustness"),
    ("limitations", "Limitations", "Discussion"),
    ("reproducibility", "Reproducibility manifest", "Open science"),
    ("model-card", "Appendix A: Model card", "Appendix"),
    ("data-sheet", "Appendix B: Data sheet", "Appendix"),
)


class SectionInfo(StrictModel):
    anchor: str
    heading: str
    tripod: str


class Headline(StrictModel):
    status: str
    passed: bool
    estimator: str | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    lower_bound: float | None = None
    n_patients: Count | None = None


class FlowStep(StrictModel):
    reason: str
    removed: Count
    remaining: Count


class CohortFlow(StrictModel):
    stays_in: Count
    steps: list[FlowStep]
    final: Count


class SplitRow(StrictModel):
    split: str
    patients: Count
    stays: Count
    transitions: Count
    deaths: Count
    mortality_pct: float | None


class SummaryCell(StrictModel):
    mean: float
    sd: float
    median: float
    q1: float
    q3: float


class CharacteristicRow(StrictModel):
    """Baseline distribution per split; None where the split has fewer than 11 stays."""

    feature: str
    unit: str
    by_split: dict[str, SummaryCell | None]


class MissingnessRow(StrictModel):
    feature: str
    missing_pct: float | None


class ReportedBin(StrictModel):
    mean_predicted: float
    observed: float | None
    n: Count


class CalibrationSection(StrictModel):
    metrics: dict[str, Any]
    bins: list[ReportedBin]


class DynamicsSection(StrictModel):
    holdout_nll: float | None
    metrics: dict[str, Any]
    coverage: list[CoveragePoint]
    horizon_error: list[HorizonPoint]


class DoseLevelRow(StrictModel):
    dimension: str
    unit: str
    level: int
    median_dose: float | None
    clinician: Count
    policy: Count
    clinician_pct: float | None
    policy_pct: float | None


class AgreementSection(StrictModel):
    split: str
    n_steps: Count
    exact: Count
    exact_pct: float | None
    within_one: Count
    within_one_pct: float | None


class ReportedEstimate(StrictModel):
    estimator: str
    target: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    method: str
    n_patients: Count
    ess: float | None
    lower_bound: float | None
    split: str
    diagnostics: dict[str, Any]


class ReportedSubgroup(StrictModel):
    attribute: str
    level: str
    n_patients: Count
    estimator: str
    difference: float
    ci_low: float
    ci_high: float
    lower_bound: float
    ess: float | None
    gate_status: str | None


class ExampleExplanation(StrictModel):
    label: str
    contrast: float
    top: list[TopFeature]


class ReportedSanity(StrictModel):
    """`SanityResult` as published (the number of rows checked is a count)."""

    method: str
    threshold: float
    n_rows: Count
    n_repeats: int
    full_randomisation_spearman: float
    cascading: list[RandomisationStep]
    passed: bool
    reason: str


class ExplanationSection(StrictModel):
    target: str
    n_rows: Count
    grouped_method: str
    groups: list[list[str]]
    completeness: CompletenessCheck
    sanity: ReportedSanity
    passed: bool
    global_importance: list[FeatureImportance]
    method_agreement_spearman: float
    examples: list[ExampleExplanation]


class TrajectoryCase(StrictModel):
    label: str
    reason: str
    note: str
    outcome: str | None
    steps: list[TrajectoryStepInput]


class Reproducibility(StrictModel):
    policy: PolicyFingerprint
    cohort: CohortFingerprint
    spec_hash: str
    input_files: dict[str, str]
    configs: dict[str, Any]
    seeds: dict[str, int]
    versions: dict[str, str]
    git_sha: str | None
    package_version: str
    commands: list[str]


class ModelCard(StrictModel):
    """Mitchell et al. 2019, "Model Cards for Model Reporting"."""

    model_details: dict[str, str]
    intended_use: str
    factors: list[str]
    metrics: list[str]
    evaluation_data: str
    training_data: str
    ethical_considerations: list[str]
    caveats: list[str]


class DataSheet(StrictModel):
    """Gebru et al. 2021, "Datasheets for Datasets" (abridged to what the pipeline knows)."""

    motivation: str
    composition: dict[str, Count | str]
    collection: str
    preprocessing: list[str]
    uses: str
    distribution: str
    maintenance: str


class AuditReport(StrictModel):
    """report.json. Build it with `build_audit_report(ReportInputs)`; render with `write_report`."""

    schema_version: int = REPORT_SCHEMA_VERSION
    package_version: str = __version__
    title: str
    generated_at: str
    policy_name: str
    algorithm: str
    sections: list[SectionInfo]
    headline: Headline
    intended_use: IntendedUse
    cohort_flow: CohortFlow
    splits: list[SplitRow]
    characteristics: list[CharacteristicRow]
    missingness: list[MissingnessRow]
    calibration: CalibrationSection | None
    dynamics: DynamicsSection | None
    doses: list[DoseLevelRow]
    agreement: AgreementSection | None
    ope: list[ReportedEstimate]
    gate: GateDecision
    subgroups: list[ReportedSubgroup]
    explanation: ExplanationSection | None
    trajectories: list[TrajectoryCase]
    sensitivity: list[SensitivityRow]
    limitations: list[str]
    reproducibility: Reproducibility
    model_card: ModelCard
    data_sheet: DataSheet
    suppression_note: str = Field(
        "Counts from 1 to 10 are shown as '<11' (zeros are shown). Cells marked '*' are larger "
        "counts hidden so that a suppressed count cannot be recomputed by subtraction; "
        "percentages are omitted wherever they would reveal a suppressed count."
    )
