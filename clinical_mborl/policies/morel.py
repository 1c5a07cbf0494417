"""MOReL: model-based offline RL in a pessimistic MDP (Kidambi et al., NeurIPS 2020).

Read top to bottom: the config; the pessimistic MDP (unknown-region detector and HALT); the
networks; one update step; the loop.

1. Unknown-region detector: a state-action is unknown when the ensemble's disagreement
   (max pairwise distance between member predictions) exceeds
   threshold = kappa * (the largest disagreement seen on the dataset's own (s, a) pairs).
2. Pessimistic MDP: an unknown transition goes to an absorbing HALT state. HALT pays
   `halt_reward` once and ends the trajectory; by default that is the worst return a stay can
   have (the lower bound MOReL's analysis needs), optionally minus a margin.
3. Policy optimisation inside it from h-step rollouts branched from dataset states: soft
   Q-learning over dose levels, SAC over continuous doses (the paper used NPG; any planner fits).

The official code picks its final policy with real-environment rollouts; here selection is
offline (`clinical_mborl.policies.selection`).
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
from clinical_mborl.policies.rollouts import DynamicsModel
from clinical_mborl.policies.system import ModelBasedSystem, TrainingData, fit_system, prepare

# ---------------------------------------------------------------------------- 1. config


@dataclass(frozen=True)
class MorelConfig(ModelBasedConfig):
    """MOReL settings."""

    kappa: float = 3.0
    """Unknown when disagreement(s, a) > kappa * max disagreement on the data (official kappa 3.0)."""

    halt_penalty_scale: float = 0.0
    """c in halt_reward = worst - c * (r_max - r_min) * H, where `worst` is the lowest return any
    stay can have (window steps x the lowest step reward + the lowest outcome reward) and
    H = min(1 / (1 - gamma), window steps). c = 0 makes an unknown state-action exactly as bad as
    the worst outcome: the value bound MOReL needs. c = 1 is the paper's -r_max / (1 - gamma)
    style penalty; with terminal outcome rewards it makes death preferable to uncertainty, so it
    is not the default."""

    horizon: int = 5
    """h: rollout length in the pessimistic MDP, branched from dataset states."""

    real_fraction: float = 0.0
    """Share of dataset rows per minibatch. 0: plan in the pessimistic MDP only, as MOReL does."""


# ---------------------------------------------------------------------------- 2. pessimistic MDP


def halt_reward(rewards: Tensor, end: Tensor, gamma: float, window_steps: int, scale: float) -> float:
    """The one-off reward for entering HALT (see `MorelConfig.halt_penalty_scale`)."""
    r_min, r_max = float(rewards.min()), float(rewards.max())
    step_min = float(rewards[~end].min()) if bool((~end).any()) else 0.0
    outcome_min = float(rewards[end].min()) if bool(end.any()) else 0.0
    worst = window_steps * min(0.0, step_min) + min(0.0, outcome_min)
    spread = (r_max - r_min) if r_max > r_min else max(abs(r_min), 1.0)
    horizon = min(1.0 / (1.0 - gamma) if gamma < 1 else float("inf"), float(window_steps))
    return worst - scale * spread * horizon


class PessimisticMDP:
    """The model's reward, except unknown state-actions go to HALT (reward `halt`, then end).

    Called on each `ModelStep` of a rollout; `halt_rate` is the share of the last call's
    transitions that were sent to HALT.
    """

    def __init__(self, threshold: float, halt: float) -> None:
        self.threshold, self.halt = float(threshold), float(halt)
        self.halt_rate = 0.0

    def __call__(self, step: Any) -> tuple[Tensor, Tensor]:
        unknown = step.disagreement > self.threshold
        self.halt_rate = float(unknown.float().mean()) if unknown.numel() else 0.0
        rewards = torch.where(unknown, torch.full_like(step.rewards, self.halt), step.rewards)
        return rewards, unknown


def pessimistic_mdp(dynamics: DynamicsModel, data: TrainingData, config: MorelConfig) -> PessimisticMDP:
    """Threshold = kappa * the ensemble's disagreement on the train split; HALT reward from its rewards."""
    scale = float(dynamics.data_disagreement(data.transitions.split("train")))
    if not scale > 0:
        raise InputError(f"morel: the ensemble's disagreement on the data is {scale}; expected > 0. "
                         "Train the dynamics with at least 2 distinct elite members.")
    train = data.transitions.split("train").arrays(normalised=False)
    halt = halt_reward(torch.as_tensor(train.rewards), torch.as_tensor(train.end), data.gamma,
                       int(dynamics.n_steps), config.halt_penalty_scale)
    return PessimisticMDP(config.kappa * scale, halt)


# ---------------------------------------------------------------------------- 3-5. networks, update, loop


class MorelSystem(ModelBasedSystem):
    """Every `rollout_every` updates: a rollout round in the pessimistic MDP; every update: one
    soft-Q (dose levels) or SAC (doses) step on a minibatch from the model buffer."""

    def __init__(self, config: MorelConfig, data: TrainingData, dynamics: DynamicsModel) -> None:
        mdp = pessimistic_mdp(dynamics, data, config)
        super().__init__(config, data, dynamics, mdp)
        self.mdp = mdp
        self.agent = make_agent(data, config)  # networks: Q-network, or actor + twin critics

    def act(self, states: Tensor, log_pb: Tensor | None, generator: torch.Generator) -> Tensor:
        return self.agent.act(states, log_pb, generator)

    def env_actions(self, actions: Tensor) -> Tensor:
        return self.agent.env_actions(actions)

    def optimiser_groups(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        return agent_optimiser_groups(self.agent)

    def update(self, i: int) -> dict[str, Tensor]:
        real, model = self.mixed_batch(i)  # rolls out in the pessimistic MDP when it is time
        metrics = agent_update(self.agent, self.join(real, model), self.generator, self.optimise)
        return {**metrics, "halt_rate": torch.tensor(self.mdp.halt_rate)}


def train_morel(transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
                config: MorelConfig | None = None) -> LearnedPolicy:
    """Train MOReL on the train split with rollouts in the pessimistic version of `dynamics`."""
    config = config or MorelConfig()
    if config.kappa <= 0 or config.halt_penalty_scale < 0:
        raise InputError(f"morel: need kappa > 0 and halt_penalty_scale >= 0; got {config.kappa}, "
                         f"{config.halt_penalty_scale}.")
    data = prepare(transitions, behavior, dynamics, config, "morel", needs_dynamics=True)
    assert dynamics is not None
    system = MorelSystem(config, data, dynamics)
    fit_system(system)
    policy = agent_policy(system.agent, data, config, "morel", behavior, system.history)
    policy.config.update({"halt_threshold": system.mdp.threshold, "halt_reward": system.mdp.halt})
    return policy
