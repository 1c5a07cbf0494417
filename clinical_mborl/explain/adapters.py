"""Explain a trained `LearnedPolicy` (policies stage) on a cohort split.

Discrete policies: the contrast is the network's output for the recommended (greedy, support-
masked) action minus that for the clinician's recorded action: a Q-difference for Q-heads, a
logit difference for categorical actors. Continuous policies: the recommended mean dose of one
dimension minus the clinician's recorded dose, in clinical units.

>>> from clinical_mborl.policies.loading import load_policy  # doctest: +SKIP
>>> e = explain_learned_policy(load_policy("out/morel", ts, behavior), ts)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from clinical_mborl.cohort.transitions import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.explain.contrast import ContrastTarget, action_contrast
from clinical_mborl.explain.explanation import ExplainConfig, Explanation, explain_policy
from clinical_mborl.policies.learned import LearnedPolicy


class _DoseContrast:
    """F(s) = mean recommended dose of dimension `dim` (clinical units) - the clinician's dose."""

    def __init__(self, module: nn.Module, dim: int) -> None:
        self.module, self.dim = module, dim

    def __call__(self, states: Tensor, clinician_dose: Tensor) -> Tensor:
        return self.module(states)[:, self.dim] - clinician_dose


def learned_policy_target(policy: LearnedPolicy, states_raw: np.ndarray, clinician_actions: np.ndarray,
                          dimension: int = 0) -> tuple[ContrastTarget, str]:
    """(contrast target, label) for `policy` at `states_raw` against the clinician's actions.

    Args:
        clinician_actions: discrete: joint indices [n]; continuous: doses [n, k] (clinical units).
        dimension: continuous only, the dose dimension explained.
    """
    if policy.action_kind == "discrete":
        recommended = torch.as_tensor(policy.action_probabilities(states_raw).argmax(1))
        reference = torch.as_tensor(np.asarray(clinician_actions, dtype=np.int64))
        label = ("Q(s, recommended) - Q(s, clinician)" if policy.head == "q"
                 else "logit(recommended) - logit(clinician)")
        return action_contrast(policy.network, recommended, reference), label
    doses = np.asarray(clinician_actions, dtype=np.float32)
    k = len(policy.action_space.dimensions)
    if doses.ndim != 2 or doses.shape[1] != k or not 0 <= dimension < k:
        raise InputError(f"explain: continuous policies need clinician doses [n, {k}] and 0 <= dimension < {k}; "
                         f"got {doses.shape} and {dimension}.")
    dim = policy.action_space.dimensions[dimension]
    target = ContrastTarget(build=lambda m: _DoseContrast(m, dimension), module=policy.network,
                            extra=(torch.as_tensor(doses[:, dimension]),))
    return target, f"recommended {dim.name} - clinician's ({dim.unit})"


def explain_learned_policy(policy: LearnedPolicy, transitions: TransitionSet, split: str = "test",
                           config: ExplainConfig | None = None, dimension: int = 0) -> Explanation:
    """Explain `policy` on the `split` rows of `transitions`; train-split states are the baselines."""
    if tuple(policy.feature_names) != tuple(transitions.feature_names):
        raise InputError("explain: the policy was trained on other state features than this cohort's; "
                         "use the cohort the policy was trained on.")
    rows = transitions.split(split)
    if len(rows) == 0:
        raise InputError(f"explain: the cohort has no '{split}' rows; choose another split.")
    arrays = rows.arrays(normalised=False)
    clinician = arrays.actions if policy.action_kind == "discrete" else arrays.doses
    background = transitions.split("train").arrays(normalised=False).states
    target, label = learned_policy_target(policy, arrays.states.astype(np.float64), clinician, dimension)
    return explain_policy(target, arrays.states, transitions.manifest.state_features, background,
                          config, target_label=label)
