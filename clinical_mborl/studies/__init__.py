"""Simulation studies: do the OPE intervals cover the truth, and does the gate refuse harm?

`run_study("coverage" | "gate", StudyConfig(...), out)` draws R independent data sets from the
sepsis simulator, runs the whole estimation on each (cohort -> clinician model -> OPE for every
candidate -> gate) and compares it with each candidate's closed-loop truth.

>>> from clinical_mborl.studies import StudyConfig
>>> StudyConfig(patients=60, replicates=3, policies=("no-treatment",)).candidates
('clinician', 'no-treatment')
"""

from clinical_mborl.studies.candidates import (
    BUILTIN_PROTOCOLS,
    LEARNED,
    SoftenedPolicy,
    build_candidate,
    resolve_kind,
    truth_policy,
)
from clinical_mborl.studies.config import (
    DEFAULT_CANDIDATES,
    StudyConfig,
    derive_seed,
    simulator_config,
)
from clinical_mborl.studies.coverage import (
    CoverageRow,
    GateEstimatorChoice,
    RankingRow,
    coverage_rows,
    ranking_rows,
    select_gate_estimator,
)
from clinical_mborl.studies.gate_summary import GateRow, GateStudyVerdict, gate_rows, gate_verdict
from clinical_mborl.studies.reference import (
    StudyReference,
    load_reference,
    prepare_reference,
    study_spec,
)
from clinical_mborl.studies.study import StudyResult, run_study
from clinical_mborl.studies.truth import TruthRecord, compute_truths

__all__ = [
    "BUILTIN_PROTOCOLS",
    "DEFAULT_CANDIDATES",
    "LEARNED",
    "CoverageRow",
    "GateEstimatorChoice",
    "GateRow",
    "GateStudyVerdict",
    "RankingRow",
    "SoftenedPolicy",
    "StudyConfig",
    "StudyReference",
    "StudyResult",
    "TruthRecord",
    "build_candidate",
    "compute_truths",
    "coverage_rows",
    "derive_seed",
    "gate_rows",
    "gate_verdict",
    "load_reference",
    "prepare_reference",
    "ranking_rows",
    "resolve_kind",
    "run_study",
    "select_gate_estimator",
    "simulator_config",
    "study_spec",
    "truth_policy",
]
