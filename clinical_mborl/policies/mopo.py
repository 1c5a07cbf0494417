"""MOPO: model-based offline policy optimisation (Yu et al., NeurIPS 2020).

Branch h-step rollouts from dataset states in the learned ensemble and penalise the model reward
by the ensemble's uncertainty u(s, a) = max_i ||Sigma_i(s, a)|| (the `uncertainty` of
`DynamicsEnsemble.step`):

    r~(s, a) = r^(s, a) - lambda * (r_max - r_min) * max(0, u(s, a) / u_data - 1)

u_data is the mean uncertainty on the dataset's own state-actions. MOPO penalises u itself; with
outcome-only rewards (+-1 at the last step) a per-step cost of ~u makes early death attractive,
so only the excess over the in-distribution level is charged, in units of the reward range.
The policy is optimised on minibatches that are 5% dataset rows and 95% model rows: soft
Q-learning over dose levels, SAC over continuous doses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.policies.agents import (
    agent_optimiser_groups,
    agent_policy,
    agent_update,
    make_agent,
)
from clinical_mborl.policies.config import ModelBasedConfig
from clinical_mborl.policies.learned import LearnedPolicy
from clinical_mborl.policies.rollouts import (
    DynamicsModel,
    RewardFn,
    excess_uncertainty,
    reference_uncertainty,
)
from clinical_mborl.policies.system import ModelBasedSystem, TrainingData, fit_system, prepare


@dataclass(frozen=True)
class MopoConfig(ModelBasedConfig):
    """MOPO settings."""

    lam: float = 1.0
    """lambda in r~ = r^ - lambda (r_max - r_min) max(0, u / u_data - 1); the paper tunes its
    (unscaled) lambda in {0.5, 1, 2.5, 5}: larger is more pessimistic."""

    horizon: int = 5
    """h: model rollout length branched from dataset states (the paper uses 1 or 5)."""

    real_fraction: float = 0.05
    """f: share of dataset rows in each minibatch (MOPO/MBPO use 0.05)."""


def mopo_reward(lam: float, reference: float, spread: float) -> RewardFn:
    """r~ = r^ - lambda * spread * excess uncertainty; MOPO adds no terminations of its own."""
    def reward(step: Any) -> tuple[Tensor, Tensor]:
        penalty = lam * spread * excess_uncertainty(step.uncertainty, reference)
        return step.rewards - penalty, torch.zeros_like(step.done, dtype=torch.bool)
    return reward


class MopoSystem(ModelBasedSystem):
    """Rollouts in the uncertainty-penalised model, then one soft-Q / SAC update per step."""

    def __init__(self, config: MopoConfig, data: TrainingData, dynamics: DynamicsModel) -> None:
        reference = reference_uncertainty(dynamics, data.transitions.split("train"))
        r = data.real.rewards
        spread = float(r.max() - r.min()) or 1.0
        super().__init__(config, data, dynamics, mopo_reward(config.lam, reference, spread))
        self.agent = make_agent(data, config)
        self.reference_uncertainty, self.reward_spread = reference, spread

    def act(self, states: Tensor, log_pb: Tensor | None, generator: torch.Generator) -> Tensor:
        return self.agent.act(states, log_pb, generator)

    def env_actions(self, actions: Tensor) -> Tensor:
        return self.agent.env_actions(actions)

    def optimiser_groups(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        return agent_optimiser_groups(self.agent)

    def update(self, i: int) -> dict[str, Tensor]:
        real, model = self.mixed_batch(i)
        return agent_update(self.agent, self.join(real, model), self.generator, self.optimise)


def train_mopo(transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
               config: MopoConfig | None = None) -> LearnedPolicy:
    """Train MOPO on the train split with rollouts in `dynamics`."""
    config = config or MopoConfig()
    if config.lam < 0:
        raise InputError(f"mopo: lam must be >= 0; got {config.lam}.")
    data = prepare(transitions, behavior, dynamics, config, "mopo", needs_dynamics=True)
    assert dynamics is not None
    system = MopoSystem(config, data, dynamics)
    fit_system(system)
    policy = agent_policy(system.agent, data, config, "mopo", behavior, system.history)
    policy.config.update({"reference_uncertainty": system.reference_uncertainty,
                          "reward_spread": system.reward_spread})
    return policy
