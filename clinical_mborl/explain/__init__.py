"""Explanations of a policy's recommendations (Captum), with completeness and sanity checks.

Entry point: `explain_policy(target, states_raw, features, background_raw, config) -> Explanation`,
where `target` is a `ContrastTarget` (e.g. `action_contrast(q_net, recommended, clinician)`).
"""

from clinical_mborl.explain.adapters import explain_learned_policy, learned_policy_target
from clinical_mborl.explain.attributions import (
    CompletenessCheck,
    IGResult,
    gradient_shap,
    grouped_attributions,
    integrated_gradients,
)
from clinical_mborl.explain.contrast import (
    ContrastTarget,
    action_contrast,
    feature_groups,
    group_mask,
    scalar_contrast,
)
from clinical_mborl.explain.explanation import (
    ExplainConfig,
    Explanation,
    ExplanationSummary,
    FeatureImportance,
    RowExplanation,
    TopFeature,
    explain_policy,
    load_explanation,
    save_explanation,
)
from clinical_mborl.explain.sanity import (
    RandomisationStep,
    SanityResult,
    parameter_randomisation_check,
)

__all__ = [
    "CompletenessCheck",
    "ContrastTarget",
    "ExplainConfig",
    "Explanation",
    "ExplanationSummary",
    "FeatureImportance",
    "IGResult",
    "RandomisationStep",
    "RowExplanation",
    "SanityResult",
    "TopFeature",
    "action_contrast",
    "explain_learned_policy",
    "explain_policy",
    "feature_groups",
    "gradient_shap",
    "group_mask",
    "grouped_attributions",
    "integrated_gradients",
    "learned_policy_target",
    "load_explanation",
    "parameter_randomisation_check",
    "save_explanation",
    "scalar_contrast",
]
