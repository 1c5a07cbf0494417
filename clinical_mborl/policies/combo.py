"""COMBO: conservative offline model-based policy optimisation (Yu et al., NeurIPS 2021).

Read top to bottom: the config; the networks; the conservative (CQL) term; one update step;
the loop.

A SAC-style actor-critic learns on minibatches that are half dataset rows and half transitions
from h-step rollouts in the learned ensemble. Its critics minimise the Bellman error plus

    beta * ( E_{s ~ model rollouts}[ logsumexp_a Q(s, a) ]  -  E_{(s, a) ~ dataset}[ Q(s, a) ] )

which pushes Q down on model-generated state-actions and up on the clinician's recorded ones.
Over joint dose levels the log-sum-exp is exact; over continuous doses it is estimated by
importance sampling from uniform and current-policy doses, as in CQL (Kumar et al. 2020, app. F).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.policies.buffers import Batch, concat
from clinical_mborl.policies.config import ModelBasedConfig
from clinical_mborl.policies.learned import Head, LearnedPolicy
from clinical_mborl.policies.rollouts import DynamicsModel, keep_reward
from clinical_mborl.policies.sac import Optimise, SacAgent, sac_optimiser_groups
from clinical_mborl.policies.system import (
    ModelBasedSystem,
    TrainingData,
    build_policy,
    fit_system,
    prepare,
)

# ---------------------------------------------------------------------------- 1. config


@dataclass(frozen=True)
class ComboConfig(ModelBasedConfig):
    """COMBO settings."""

    beta: float = 1.0
    """beta, the weight of the conservative term; the paper tunes it in {0.5, 1, 5}."""

    horizon: int = 5
    """h: model rollout length branched from dataset states; the paper uses h in {1, 5}."""

    real_fraction: float = 0.5
    """f: share of dataset rows per minibatch (COMBO: 0.5); must be > 0 (the push-up needs data)."""

    n_action_samples: int = 4
    """Continuous doses: N uniform + N policy samples per model state for the log-sum-exp
    estimate (CQL uses 10; the estimate dominates the cost of a CPU update, 4 keeps it ~2x faster)."""


# ---------------------------------------------------------------------------- 2. networks
# SacAgent: actor (categorical over dose levels, or tanh-Gaussian over doses), twin critics,
# target critics, and the entropy temperature alpha. See `sac.py`.


# ---------------------------------------------------------------------------- 3. the CQL term


def combo_critic_loss(agent: SacAgent, real: Batch, model: Batch, generator: torch.Generator,
                      n_samples: int = 4) -> tuple[Tensor, Tensor]:
    """(Bellman error on the real + model mix, the conservative term), both summed over the twin
    critics; over dose levels one critic forward serves both."""
    batch = concat([real, model])
    y = agent.target(batch, generator)  # r + gamma V'(s'), from the target critics, no gradient
    n_real = len(real)
    if agent.discrete:
        q_all = agent.critic(batch.states)  # [2, n, A]
        q = q_all.gather(-1, batch.actions.long().view(1, -1, 1).expand(2, -1, 1)).squeeze(-1)
        push_down = torch.logsumexp(q_all[:, n_real:], dim=-1)  # model states: exact over levels
    else:
        q = agent.critic(batch.states, batch.actions)  # [2, n]
        push_down = sampled_logsumexp(agent, model.states, generator, n_samples)  # model states
    push_up = q[:, :n_real]  # the clinicians' recorded state-actions
    bellman = F.mse_loss(q, y.expand_as(q), reduction="none").sum(0).mean()
    conservative = (push_down.mean(-1) - push_up.mean(-1)).sum()
    return bellman, conservative


def sampled_logsumexp(agent: SacAgent, states: Tensor, generator: torch.Generator, n: int) -> Tensor:
    """log integral exp Q(s, a) da over the scaled dose box, by importance sampling from
    Uniform[-1, 1]^k and pi(.|s): logsumexp_j (Q(s, a_j) - log q(a_j)) - log(2N). [2, n_states]."""
    m, k = states.shape[0], agent.gaussian.action_dim
    rep = states.repeat_interleave(n, dim=0)  # [m * N, d]
    uniform = torch.rand((m * n, k), generator=generator, device=states.device) * 2.0 - 1.0
    log_uniform = torch.full((m * n,), -k * math.log(2.0), device=states.device)
    with torch.no_grad():  # the actor only proposes doses here; it gets no gradient from critics
        policy, log_pi = agent.gaussian.sample(rep, generator)
    q_uniform = agent.critic(rep, uniform) - log_uniform  # [2, m * N]
    q_policy = agent.critic(rep, policy) - log_pi
    both = torch.cat([q_uniform.view(2, m, n), q_policy.view(2, m, n)], dim=-1)
    return torch.logsumexp(both, dim=-1) - math.log(2 * n)


# ---------------------------------------------------------------------------- 4. one update step


def combo_update(agent: SacAgent, real: Batch, model: Batch, config: ComboConfig,
                 generator: torch.Generator, optimise: Optimise) -> dict[str, Tensor]:
    """Critics (Bellman error on the mix + beta * conservative term), actor, alpha, targets."""
    bellman, conservative = combo_critic_loss(agent, real, model, generator, config.n_action_samples)
    critic_loss = bellman + config.beta * conservative  # <- the CQL term, weighted by beta
    optimise("critic", critic_loss)

    actor_loss, entropy, target = agent.actor_loss(concat([real, model]), generator)
    optimise("actor", actor_loss)
    if config.auto_alpha:
        optimise("alpha", agent.alpha_loss(entropy, target))
    agent.update_targets()
    return {"critic_loss": critic_loss.detach(), "bellman": bellman.detach(),
            "conservative": conservative.detach(), "actor_loss": actor_loss.detach(),
            "alpha": agent.alpha, "entropy": entropy.mean()}


# ---------------------------------------------------------------------------- 5. the loop


class ComboSystem(ModelBasedSystem):
    """Every `rollout_every` updates: a rollout round in the model (plain model reward);
    every update: `combo_update` on half real, half model rows."""

    config: ComboConfig

    def __init__(self, config: ComboConfig, data: TrainingData, dynamics: DynamicsModel) -> None:
        super().__init__(config, data, dynamics, keep_reward)
        self.agent = SacAgent(data.in_dim, data.transitions.manifest.action_space, config, data.gamma)

    def act(self, states: Tensor, log_pb: Tensor | None, generator: torch.Generator) -> Tensor:
        return self.agent.act(states, log_pb, generator)

    def env_actions(self, actions: Tensor) -> Tensor:
        return self.agent.env_actions(actions)

    def optimiser_groups(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        return sac_optimiser_groups(self.agent)

    def update(self, i: int) -> dict[str, Tensor]:
        real, model = self.mixed_batch(i)
        assert real is not None  # train_combo refuses real_fraction giving no dataset rows
        return combo_update(self.agent, real, model, self.config, self.generator, self.optimise)


def train_combo(transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
                config: ComboConfig | None = None) -> LearnedPolicy:
    """Train COMBO on the train split with rollouts in `dynamics`."""
    config = config or ComboConfig()
    if config.beta < 0 or config.n_action_samples < 1:
        raise InputError(f"combo: need beta >= 0 and n_action_samples >= 1; got {config.beta}, "
                         f"{config.n_action_samples}.")
    if round(config.batch_size * config.real_fraction) < 1 or config.real_fraction >= 1:
        raise InputError(f"combo: real_fraction must leave dataset and model rows in each minibatch "
                         f"of {config.batch_size}; got {config.real_fraction} (the paper uses 0.5).")
    data = prepare(transitions, behavior, dynamics, config, "combo", needs_dynamics=True)
    assert dynamics is not None
    system = ComboSystem(config, data, dynamics)
    fit_system(system)
    agent = system.agent
    head: Head = "logits" if agent.discrete else "tanh_gaussian"
    return build_policy(data, config, "combo", head, agent.actor, agent.actor_spec, behavior,
                        critic=agent.critic, critic_spec=agent.critic_spec, history=system.history)
