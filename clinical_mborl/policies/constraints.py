"""The constraint to the clinician, configurable in every algorithm.

Three mechanisms, each off when its number is zero:

* **support mask** (discrete): joint dose levels with pi_b(a|s) < `support_threshold` are removed
  from the policy, from actor updates and from Bellman targets (BCQ, Fujimoto et al. 2019;
  SPIBB, Laroche et al. 2019). The clinician's most likely level is always kept, so no state is
  left without an action. Continuous doses get the soft version: a reward penalty for doses the
  clinician density rates below the threshold (BRAC value penalty, Wu et al. 2019).
* **KL to the clinician** (discrete): `kl_weight * KL(pi(.|s) || pi_b(.|s))`.
* **behaviour cloning**: `bc_weight * -log pi(a_data|s)` on dataset rows (TD3+BC, Fujimoto & Gu 2021).

pi_b is the estimated clinician (`clinical_mborl.behavior.ClinicianPolicy` or any object with the
Policy protocol). On dataset rows its cross-fitted out-of-fold probabilities are used.
Continuous doses are compared with the clinician's zero-inflated density: each treated dose
dimension's density is taken relative to the uniform density on [0, dose_max] (unit-free), an
untreated dimension contributes its probability mass.

>>> q = torch.tensor([[1.0, 5.0, 0.0]]); log_pb = torch.log(torch.tensor([[0.7, 0.001, 0.299]]))
>>> support_mask(log_pb, 0.01).tolist()
[[True, False, True]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from clinical_mborl.cohort import ActionSpaceInfo, Normalizer, TransitionSet
from clinical_mborl.core.errors import InputError

LOG_FLOOR = math.log(1e-8)
MASKED = -1e9  # logit given to disallowed actions (finite, so log-sum-exp stays defined)


@dataclass(frozen=True)
class ConstraintConfig:
    """How closely a learned policy must stay to the clinician."""

    support_threshold: float = 0.01
    """Discrete: actions with pi_b(a|s) < threshold are disallowed in the policy and in Bellman
    targets (BCQ/SPIBB support constraint); the argmax of pi_b is always allowed. Continuous: the
    threshold on the clinician's likelihood of the doses (treated dimensions: density relative to
    uniform on [0, dose_max]; untreated: probability of no dose), below which `support_penalty`
    applies. 0 disables."""

    support_penalty: float = 1.0
    """Continuous only: reward -= support_penalty * max(0, log threshold - log pi_b~(a|s)) on every
    model-rollout transition (the learned policy's doses; recorded doses are never charged),
    pi_b~ = the clinician's likelihood in box-scaled units (BRAC value penalty, Wu et al. 2019)."""

    kl_weight: float = 0.0
    """Discrete only: w in max_pi E_pi[Q] + tau H(pi) - w KL(pi || pi_b). Actor-critic: added to the
    actor loss. Soft-Q: the closed form pi ~ pi_b^(w/(tau+w)) exp(Q/(tau+w)) is used in the policy
    and in the soft value target (Jaques et al. 2019; Vieillard et al. 2020, Munchausen RL)."""

    bc_weight: float = 0.0
    """w_bc * -log pi(a_data | s) on dataset rows, added to the actor loss (TD3+BC, Fujimoto & Gu
    2021); Q-learners use softmax(Q) as pi (a DQfD-like cross-entropy on the Q-values)."""

    def needs_behavior(self, action_kind: str) -> bool:
        """Whether training needs the clinician estimate pi_b."""
        if action_kind == "discrete":
            return self.support_threshold > 0 or self.kl_weight > 0
        return self.support_threshold > 0 and self.support_penalty > 0

    def validate(self, action_kind: Literal["discrete", "continuous"], behavior: Any,
                 uses_behavior: bool = True) -> None:
        """Raise InputError for settings that cannot apply to this action space or lack pi_b
        (`uses_behavior=False`: the learner never consults pi_b, e.g. BC over doses)."""
        bad = [n for n in ("support_threshold", "support_penalty", "kl_weight", "bc_weight")
               if getattr(self, n) < 0]
        if bad:
            raise InputError(f"constraint: {bad} must be >= 0; got negative values. Use 0 to disable.")
        if action_kind == "discrete" and self.support_threshold >= 1:
            raise InputError(
                f"constraint: support_threshold is a probability in [0, 1); got {self.support_threshold}."
            )
        if action_kind == "continuous" and self.kl_weight > 0:
            raise InputError(
                "constraint: kl_weight applies to discrete dose levels; for continuous doses use "
                "bc_weight or support_threshold with support_penalty."
            )
        if behavior is None and uses_behavior and self.needs_behavior(action_kind):
            raise InputError(
                "constraint: the support mask / KL penalty needs the clinician policy, got none. "
                "Pass `behavior` (train it with `clinical-mborl train behavior`) or set "
                "support_threshold=0 and kl_weight=0."
            )


class ClinicianPrior:
    """pi_b in the learners' normalised state space (torch in, torch out).

    Wraps the estimated clinician (`clinical_mborl.behavior.ClinicianPolicy`, or any Policy):
    `predict_proba_normalised` / `log_density_normalised` when it has them, else the Policy
    protocol on raw states; cross-fitted `out_of_fold_proba_for(transitions)` for dataset rows.
    """

    def __init__(self, behavior: Any, normalizer: Normalizer, action_space: ActionSpaceInfo) -> None:
        self.behavior = behavior
        self.normalizer = normalizer
        self.action_space = action_space
        self.log_dose_max = torch.tensor([math.log(d.dose_max) if d.dose_max > 0 else 0.0
                                          for d in action_space.dimensions])

    def _check(self, p: Any, n: int, what: str) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        expected = (n, self.action_space.n_actions)
        if p.shape != expected:
            raise InputError(f"clinician policy: {what} returned shape {p.shape}, expected {expected}; "
                             "pass a behaviour policy trained on this cohort.")
        return p

    def log_proba(self, states: Tensor) -> Tensor:
        """log pi_b(. | s) for normalised states [n, d] -> [n, A], floored at log 1e-8."""
        x = states.detach().cpu().numpy()
        if hasattr(self.behavior, "predict_proba_normalised"):
            p = self.behavior.predict_proba_normalised(x)
        else:
            p = self.behavior.action_probabilities(self.normalizer.inverse(x))
        p = self._check(p, x.shape[0], "action probabilities")
        return _log_normalise(torch.as_tensor(p, dtype=torch.float32, device=states.device))

    def dataset_log_proba(self, transitions: TransitionSet, split: str = "train") -> Tensor:
        """log pi_b(. | s) on the rows of `transitions.split(split)`: the cross-fitted
        (out-of-fold) probabilities when pi_b was fitted on those rows, else predictions."""
        rows = transitions.split(split)
        fit_splits = tuple(getattr(getattr(self.behavior, "config", None), "fit_splits", ()))
        if hasattr(self.behavior, "out_of_fold_proba_for") and split in fit_splits:
            fit_frame = transitions.split(*fit_splits).frame
            p = np.asarray(self.behavior.out_of_fold_proba_for(transitions))
            p = self._check(p, fit_frame.height, "out_of_fold_proba_for")
            p = p[(fit_frame["split"] == split).to_numpy()]
            return _log_normalise(torch.as_tensor(p, dtype=torch.float32))
        return self.log_proba(torch.as_tensor(rows.arrays(normalised=True).states))

    def log_density_scaled(self, states: Tensor, doses: Tensor) -> Tensor:
        """log pi_b(dose | s) with each treated dimension's density rescaled to the unit interval
        (x dose_max); untreated (zero) dimensions keep their probability mass. [n]."""
        x = states.detach().cpu().numpy()
        d_np = doses.detach().cpu().numpy().astype(np.float64)
        if hasattr(self.behavior, "log_density_normalised"):
            d = self.behavior.log_density_normalised(x, d_np)
        else:
            d = self.behavior.log_density(self.normalizer.inverse(x), d_np)
        d = np.asarray(d, dtype=np.float64)
        if d.shape != (x.shape[0],):
            raise InputError(f"clinician policy: log_density returned shape {d.shape}, expected ({x.shape[0]},).")
        box = ((doses.detach().cpu() > 0).float() * self.log_dose_max).sum(-1)
        out = torch.as_tensor(d, dtype=torch.float32) + box
        out = torch.nan_to_num(out, nan=LOG_FLOOR, neginf=LOG_FLOOR).clamp_min(LOG_FLOOR)
        return out.to(states.device)


def _log_normalise(p: Tensor) -> Tensor:
    p = p.clamp_min(0.0)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    return p.clamp_min(math.exp(LOG_FLOOR)).log()


def support_mask(log_pb: Tensor | None, threshold: float) -> Tensor | None:
    """Allowed actions: pi_b(a|s) >= threshold, plus the clinician's most likely action. [n, A]."""
    if log_pb is None or threshold <= 0:
        return None
    mask = log_pb >= math.log(threshold)
    top = log_pb.argmax(-1, keepdim=True)
    return mask.scatter(-1, top, True)


def apply_mask(logits: Tensor, mask: Tensor | None) -> Tensor:
    """Disallowed actions get a logit of -1e9 (probability 0)."""
    return logits if mask is None else logits.masked_fill(~mask, MASKED)


def regularised_logits(q: Tensor, log_pb: Tensor | None, mask: Tensor | None,
                       tau: float, kl_weight: float) -> Tensor:
    """Logits of argmax_pi E_pi[Q] + tau H(pi) - w KL(pi||pi_b): (Q + w log pi_b) / (tau + w)."""
    if tau + kl_weight <= 0:
        raise ValueError("regularised_logits needs tau + kl_weight > 0")
    z = q if (kl_weight == 0 or log_pb is None) else q + kl_weight * log_pb
    return apply_mask(z / (tau + kl_weight), mask)


def soft_value(q: Tensor, log_pb: Tensor | None, mask: Tensor | None, tau: float, kl_weight: float) -> Tensor:
    """max_pi E_pi[Q] + tau H(pi) - w KL(pi||pi_b) = (tau + w) logsumexp(logits). [n]."""
    return (tau + kl_weight) * torch.logsumexp(regularised_logits(q, log_pb, mask, tau, kl_weight), -1)


def kl_to_clinician(log_pi: Tensor, log_pb: Tensor | None) -> Tensor:
    """KL(pi(.|s) || pi_b(.|s)) per state [n]; zero when pi_b is absent."""
    if log_pb is None:
        return torch.zeros(log_pi.shape[0], device=log_pi.device)
    pi = log_pi.exp()
    return (pi * (log_pi - log_pb)).sum(-1)


def density_penalty(log_density_scaled: Tensor, config: ConstraintConfig) -> Tensor:
    """Continuous support penalty: support_penalty * max(0, log threshold - log pi_b~(a|s)). [n]."""
    if config.support_threshold <= 0 or config.support_penalty <= 0:
        return torch.zeros_like(log_density_scaled)
    gap = math.log(config.support_threshold) - log_density_scaled
    return config.support_penalty * gap.clamp_min(0.0)
