"""Discrete conservative Q-learning (CQL(H), Kumar et al., NeurIPS 2020) on the dataset only.

Loss = Huber(Q(s, a) - y)                                  double DQN target, no bootstrap past end
     + alpha * (logsumexp_a Q(s, a) - Q(s, a_data))        the CQL term (`cql_term`)
     + bc_weight * CE(softmax Q(s, .), a_data)             optional clinician constraint.
The support mask restricts the argmax in the target and the policy that acts.

>>> q = torch.tensor([[0.0, 0.0]], requires_grad=True)
>>> cql_term(q, torch.tensor([0])).backward(); q.grad.tolist()  # pushes a_data up, a=1 down
[[-0.5, 0.5]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.policies.config import ActorCriticConfig
from clinical_mborl.policies.learned import LearnedPolicy, OutputSettings
from clinical_mborl.policies.rollouts import DynamicsModel
from clinical_mborl.policies.soft_q import SoftQAgent
from clinical_mborl.policies.system import (
    PolicySystem,
    TrainingData,
    build_policy,
    fit_system,
    prepare,
)


@dataclass(frozen=True)
class CqlConfig(ActorCriticConfig):
    """Discrete CQL settings (the actor-critic fields other than `polyak` and
    `soft_q_temperature` are unused)."""

    alpha: float = 1.0
    """alpha in alpha * E_s[logsumexp_a Q(s, a) - E_{a~D}[Q(s, a)]] (Kumar et al. 2020, eq. 4)."""

    soft_q_temperature: float = 0.0
    """0 (default): double-DQN target as in the paper's discrete experiments; > 0 soft target."""

    n_updates: int = 10_000
    """Gradient updates on minibatches of dataset rows."""

    lr: float = 1e-4
    """Adam learning rate of the Q-network."""


def cql_term(q_all: Tensor, actions: Tensor) -> Tensor:
    """logsumexp_a Q(s, a) - Q(s, a_data), averaged over rows: lowers Q on every action, raises it
    on the action the clinician took. Exact over the joint dose levels."""
    q_data = q_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    return (torch.logsumexp(q_all, dim=-1) - q_data).mean()


class CqlSystem(PolicySystem):
    """One Q-network update per step on dataset minibatches."""

    config: CqlConfig

    def __init__(self, config: CqlConfig, data: TrainingData) -> None:
        super().__init__(config, data)
        n = data.transitions.manifest.action_space.n_actions
        self.agent = SoftQAgent(data.in_dim, n, config, data.gamma)

    def optimiser_groups(self) -> dict[str, tuple[list[torch.nn.Parameter], float]]:
        return {"q": (list(self.agent.q.parameters()), self.config.lr)}

    def update(self, i: int) -> dict[str, Tensor]:
        batch = self.real.sample(self.config.batch_size, self.generator)
        td, q_all = self.agent.td_loss(batch)
        conservative = cql_term(q_all, batch.actions)
        loss = td + self.config.alpha * conservative + self.agent.bc_loss(q_all, batch)
        self.optimise("q", loss)
        self.agent.update_targets()
        return {"q_loss": loss.detach(), "td": td.detach(), "cql": conservative.detach()}


def train_cql(transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
              config: CqlConfig | None = None) -> LearnedPolicy:
    """Discrete CQL on the train split; `dynamics` is unused (uniform signature)."""
    config = config or CqlConfig()
    if transitions.manifest.action_space.kind != "discrete":
        raise InputError("cql: discrete CQL needs dose levels, got a continuous cohort; use combo "
                         "(its conservative term samples doses) or bin the doses in the cohort spec.")
    if config.alpha < 0:
        raise InputError(f"cql: alpha must be >= 0; got {config.alpha}.")
    data = prepare(transitions, behavior, None, config, "cql", needs_dynamics=False)
    system = CqlSystem(config, data)
    fit_system(system)
    return build_policy(data, config, "cql", "q", system.agent.q, system.agent.spec, behavior,
                        tau=system.agent.tau, history=system.history, output=OutputSettings())
