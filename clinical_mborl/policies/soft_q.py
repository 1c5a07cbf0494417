"""Discrete Q-learning over joint dose levels: double DQN or soft (KL-regularised) Q-learning.

With tau + kl_weight = 0 the target is double DQN (van Hasselt et al. 2016):
y = r + gamma (1 - end) Q'(s', argmax_{a allowed} Q(s', a)). Otherwise it is the soft value of the
KL-regularised policy pi ~ pi_b^(w/(tau+w)) exp(Q/(tau+w)) over allowed actions:
y = r + gamma (1 - end) (tau + w) logsumexp_{a allowed}((Q'(s', a) + w log pi_b(a|s')) / (tau + w)).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinical_mborl.policies.buffers import Batch
from clinical_mborl.policies.config import ActorCriticConfig
from clinical_mborl.policies.constraints import (
    ConstraintConfig,
    apply_mask,
    regularised_logits,
    soft_value,
    support_mask,
)
from clinical_mborl.policies.networks import DiscreteQ, network_spec, polyak_update


class SoftQAgent(nn.Module):
    """A Q-network, its target copy and the rules that turn Q into a policy."""

    def __init__(self, in_dim: int, n_actions: int, config: ActorCriticConfig, gamma: float,
                 tau: float | None = None) -> None:
        super().__init__()
        self.config, self.gamma = config, gamma
        self.constraint: ConstraintConfig = config.constraint
        self.tau = config.soft_q_temperature if tau is None else tau
        self.q = DiscreteQ(in_dim, n_actions, config.hidden)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.spec = network_spec("discrete_q", in_dim, n_actions, config.hidden)

    @property
    def hard(self) -> bool:
        """Hard-max (double DQN) rather than soft Q-learning."""
        return self.tau + self.constraint.kl_weight <= 0

    def mask(self, log_pb: Tensor | None) -> Tensor | None:
        return support_mask(log_pb, self.constraint.support_threshold)

    @torch.no_grad()
    def act(self, states: Tensor, log_pb: Tensor | None, generator: torch.Generator) -> Tensor:
        """Sample from the soft policy, or epsilon-greedy over allowed actions when hard. [n]."""
        q = self.q(states)
        mask = self.mask(log_pb)
        if not self.hard:
            probs = regularised_logits(q, log_pb, mask, self.tau, self.constraint.kl_weight).softmax(-1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        greedy = apply_mask(q, mask).argmax(-1)
        allowed = torch.ones_like(q) if mask is None else mask.float()
        random = torch.multinomial(allowed, 1, generator=generator).squeeze(-1)
        explore = torch.rand(q.shape[0], generator=generator, device=q.device) < self.config.explore_epsilon
        return torch.where(explore, random, greedy)

    def env_actions(self, actions: Tensor) -> Tensor:
        """Buffer actions are what the dynamics take (joint indices)."""
        return actions

    @torch.no_grad()
    def target(self, batch: Batch) -> Tensor:
        """Bellman target y [n]; no bootstrap past `end`."""
        q_next = self.q_target(batch.next_states)
        mask = self.mask(batch.next_log_pb)
        if self.hard:
            best = apply_mask(self.q(batch.next_states), mask).argmax(-1, keepdim=True)
            v = q_next.gather(-1, best).squeeze(-1)
        else:
            v = soft_value(q_next, batch.next_log_pb, mask, self.tau, self.constraint.kl_weight)
        return self.config.reward_scale * batch.rewards + self.gamma * (~batch.end).float() * v

    def td_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(Huber TD loss, Q(s, .) [n, A] with gradients, for extra terms on the same forward)."""
        y = self.target(batch)
        q_all = self.q(batch.states)
        q = q_all.gather(-1, batch.actions.long().unsqueeze(-1)).squeeze(-1)
        return F.smooth_l1_loss(q, y), q_all

    def bc_loss(self, q_all: Tensor, batch: Batch) -> Tensor:
        """bc_weight * cross-entropy of softmax(Q(s, .)) on the clinician's action (dataset rows)."""
        real = batch.is_real
        if self.constraint.bc_weight <= 0 or not bool(real.any()):
            return q_all.new_zeros(())
        return self.constraint.bc_weight * F.cross_entropy(q_all[real], batch.actions[real].long())

    def update_targets(self) -> None:
        polyak_update(self.q_target, self.q, self.config.polyak)


def soft_q_update(agent: SoftQAgent, batch: Batch, optimise: Callable[[str, Tensor], None]) -> dict[str, Tensor]:
    """One soft/double-DQN update (TD + optional BC term), then the target network."""
    td, q_all = agent.td_loss(batch)
    loss = td + agent.bc_loss(q_all, batch)
    optimise("q", loss)
    agent.update_targets()
    return {"q_loss": loss.detach(), "q_mean": q_all.detach().mean()}
