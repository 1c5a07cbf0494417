"""Off-policy evaluation: estimators, patient-bootstrap intervals, overlap diagnostics.

Arrays in (`OPEData`, `evaluate_arrays`), or a policy and a cohort in (`evaluate_policy`, which
fits the Q-model, rolls out the dynamics ensemble and writes `ope.json`).

>>> from clinical_mborl.ope import OPEData, WeightedImportanceSampling, evaluate_arrays  # noqa: F401
"""

from clinical_mborl.ope.data import OPEData, discounted_returns, soften
from clinical_mborl.ope.diagnostics import (
    WeightDiagnostics,
    kish_ess,
    support_share_outside,
    weight_diagnostics,
)
from clinical_mborl.ope.estimators import (
    ESTIMATORS,
    DoublyRobust,
    Estimator,
    FittedQEvaluation,
    ModelBasedEstimate,
    OnPolicyValue,
    PerDecisionWIS,
    WeightedDoublyRobust,
    WeightedImportanceSampling,
    make_estimator,
)
from clinical_mborl.ope.evaluate import evaluate_arrays
from clinical_mborl.ope.fqe import FittedQ, FQEConfig, FQEData, cross_fit_q, fit_fqe
from clinical_mborl.ope.hcope import (
    HCOPEBound,
    empirical_bernstein_lower,
    high_confidence_lower_bound,
)
from clinical_mborl.ope.intervals import (
    Interval,
    ResamplePlan,
    bca_interval,
    bootstrap_all,
    bootstrap_interval,
    paired_difference,
    percentile_interval,
)
from clinical_mborl.ope.model_based import model_based_returns, softened_sampler
from clinical_mborl.ope.policy_eval import build_ope_data, evaluate_policy
from clinical_mborl.ope.results import (
    OPE_FILE,
    HighConfidenceBound,
    OPEConfig,
    OPEEstimate,
    OPEReport,
    PairedDifference,
    SensitivityBound,
)
from clinical_mborl.ope.sensitivity import (
    fit_sensitivity_bounds,
    fit_sensitivity_fqe,
    msm_weight_range,
)

__all__ = [
    "ESTIMATORS",
    "OPE_FILE",
    "DoublyRobust",
    "Estimator",
    "FQEConfig",
    "FQEData",
    "FittedQ",
    "FittedQEvaluation",
    "HCOPEBound",
    "HighConfidenceBound",
    "Interval",
    "ModelBasedEstimate",
    "OPEConfig",
    "OPEData",
    "OPEEstimate",
    "OPEReport",
    "OnPolicyValue",
    "PairedDifference",
    "PerDecisionWIS",
    "ResamplePlan",
    "SensitivityBound",
    "WeightDiagnostics",
    "WeightedDoublyRobust",
    "WeightedImportanceSampling",
    "bca_interval",
    "bootstrap_all",
    "bootstrap_interval",
    "build_ope_data",
    "cross_fit_q",
    "discounted_returns",
    "empirical_bernstein_lower",
    "evaluate_arrays",
    "evaluate_policy",
    "fit_fqe",
    "fit_sensitivity_bounds",
    "fit_sensitivity_fqe",
    "high_confidence_lower_bound",
    "kish_ess",
    "make_estimator",
    "model_based_returns",
    "msm_weight_range",
    "paired_difference",
    "percentile_interval",
    "soften",
    "softened_sampler",
    "support_share_outside",
    "weight_diagnostics",
]
