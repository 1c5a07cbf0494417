"""Behaviour cloning: imitate the clinician's recorded doses (Pomerleau 1991; a baseline every
offline-RL paper reports).

Discrete: cross-entropy of a categorical policy on the joint dose level. Continuous: negative
log-likelihood of the recorded doses under a tanh-Gaussian scaled to [0, dose_max] with a
probability mass at zero dose (see `TanhGaussianActor`). The support
mask (if set) applies when the policy acts, like in every other learner.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> ts = make_toy_transitions(40, seed=0)
>>> cfg = BcConfig(n_updates=5, batch_size=16, hidden=(8,), quiet=True,
...                constraint=ConstraintConfig(support_threshold=0.0))
>>> train_bc(ts, None, None, cfg).action_probabilities(ts.frame.select(ts.feature_names).to_numpy()[:2]).shape
(2, 9)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.policies.config import LearnerConfig
from clinical_mborl.policies.constraints import ConstraintConfig
from clinical_mborl.policies.learned import Head, LearnedPolicy
from clinical_mborl.policies.networks import CategoricalActor, TanhGaussianActor, network_spec
from clinical_mborl.policies.rollouts import DynamicsModel
from clinical_mborl.policies.system import (
    PolicySystem,
    TrainingData,
    build_policy,
    fit_system,
    prepare,
)

__all__ = ["BcConfig", "ConstraintConfig", "train_bc"]


@dataclass(frozen=True)
class BcConfig(LearnerConfig):
    """Behaviour cloning settings."""

    n_updates: int = 5_000
    """Gradient updates on minibatches of dataset rows."""

    lr: float = 1e-3
    """Adam learning rate of the policy network."""


class BcSystem(PolicySystem):
    """Maximum likelihood of the clinician's actions on train-split rows."""

    def __init__(self, config: BcConfig, data: TrainingData) -> None:
        super().__init__(config, data)
        space = data.transitions.manifest.action_space
        self.discrete = space.kind == "discrete"
        self.net: CategoricalActor | TanhGaussianActor
        if self.discrete:
            self.net = CategoricalActor(data.in_dim, space.n_actions, config.hidden)
            self.spec = network_spec("categorical", data.in_dim, space.n_actions, config.hidden)
        else:
            dose_max, zero = [d.dose_max for d in space.dimensions], config.zero_dose_fraction
            self.net = TanhGaussianActor(data.in_dim, len(dose_max), config.hidden, dose_max, zero)
            self.spec = network_spec("tanh_gaussian", data.in_dim, len(dose_max), config.hidden, dose_max, zero)

    def optimiser_groups(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        return {"policy": (list(self.net.parameters()), self.config.lr)}

    def loss(self, states: Tensor, actions: Tensor) -> Tensor:
        """Discrete: CE(logits, a). Continuous: -log pi(a | s) of the box-scaled doses, censored at
        the zero-dose cut (probability mass for no treatment, density above)."""
        if self.discrete:
            return F.cross_entropy(self.net(states), actions.long())
        assert isinstance(self.net, TanhGaussianActor)
        return -self.net.log_likelihood(states, actions).mean()

    def update(self, i: int) -> dict[str, Tensor]:
        batch = self.real.sample(self.config.batch_size, self.generator)
        loss = self.loss(batch.states, batch.actions)
        self.optimise("policy", loss)
        return {"bc_loss": loss.detach()}


def train_bc(transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
             config: BcConfig | None = None) -> LearnedPolicy:
    """Clone the clinician; `dynamics` is unused (uniform signature across learners)."""
    config = config or BcConfig()
    # BC never consults pi_b while training; over dose levels the support mask applies when acting
    discrete = transitions.manifest.action_space.kind == "discrete"
    data = prepare(transitions, behavior, None, config, "bc", needs_dynamics=False, uses_behavior=discrete)
    system = BcSystem(config, data)
    fit_system(system)
    head: Head = "logits" if system.discrete else "tanh_gaussian"
    return build_policy(data, config, "bc", head, system.net, system.spec, behavior, history=system.history)
