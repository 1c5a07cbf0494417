"""Soft actor-critic for dose levels (categorical actor; Christodoulou 2019) and doses
(tanh-Gaussian actor; Haarnoja et al. 2018), with twin critics and the clinician constraint.

The losses are separate methods so each algorithm writes its own update step (COMBO adds its
conservative term to `critic_loss`). `actor_loss` freezes the critics, and `critic_loss` samples
next actions without gradients, so neither loss touches the other's parameters.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinical_mborl.cohort import ActionSpaceInfo
from clinical_mborl.policies.buffers import Batch
from clinical_mborl.policies.config import ActorCriticConfig
from clinical_mborl.policies.constraints import apply_mask, kl_to_clinician, support_mask
from clinical_mborl.policies.networks import (
    CategoricalActor,
    TanhGaussianActor,
    TwinContinuousQ,
    TwinDiscreteQ,
    frozen,
    network_spec,
    polyak_update,
)


class SacAgent(nn.Module):
    """Actor, twin critics, their targets and the entropy temperature of one SAC learner."""

    def __init__(self, in_dim: int, action_space: ActionSpaceInfo, config: ActorCriticConfig,
                 gamma: float) -> None:
        super().__init__()
        self.discrete = action_space.kind == "discrete"
        self.config, self.gamma = config, gamma
        hidden = config.hidden
        self.actor: nn.Module
        self.critic: nn.Module
        if self.discrete:
            n = action_space.n_actions
            self.actor = CategoricalActor(in_dim, n, hidden)
            self.critic = TwinDiscreteQ(in_dim, n, hidden)
            self.actor_spec = network_spec("categorical", in_dim, n, hidden)
            self.critic_spec = network_spec("twin_discrete_q", in_dim, n, hidden)
        else:
            k = len(action_space.dimensions)
            dose_max = [d.dose_max for d in action_space.dimensions]
            zero = config.zero_dose_fraction
            self.actor = TanhGaussianActor(in_dim, k, hidden, dose_max, zero)
            self.critic = TwinContinuousQ(in_dim, k, hidden)
            self.actor_spec = network_spec("tanh_gaussian", in_dim, k, hidden, dose_max, zero)
            self.critic_spec = network_spec("twin_continuous_q", in_dim, k, hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_alpha)))

    @property
    def gaussian(self) -> TanhGaussianActor:
        """The actor of a continuous-dose agent."""
        assert isinstance(self.actor, TanhGaussianActor), "discrete agents have a categorical actor"
        return self.actor

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.detach().exp()

    # ------------------------------------------------------------------ policy
    def mask(self, log_pb: Tensor | None) -> Tensor | None:
        return support_mask(log_pb, self.config.constraint.support_threshold)

    def log_pi(self, states: Tensor, log_pb: Tensor | None) -> Tensor:
        """Discrete: log pi(.|s) over allowed actions [n, A] (disallowed: about -1e9)."""
        return apply_mask(self.actor(states), self.mask(log_pb)).log_softmax(-1)

    @torch.no_grad()
    def act(self, states: Tensor, log_pb: Tensor | None, generator: torch.Generator) -> Tensor:
        """Sample actions as buffers store them: joint index [n], or scaled actions [n, k]."""
        if self.discrete:
            return torch.multinomial(self.log_pi(states, log_pb).exp(), 1, generator=generator).squeeze(-1)
        scaled, _ = self.gaussian.sample(states, generator)
        return scaled

    def env_actions(self, actions: Tensor) -> Tensor:
        """Buffer actions -> what the dynamics take: joint index, or doses in clinical units."""
        return actions if self.discrete else self.gaussian.to_doses(actions)

    def q_taken(self, critic: nn.Module, states: Tensor, actions: Tensor) -> Tensor:
        """Q_1, Q_2 of the batch's actions (joint index, or scaled action): [2, n]."""
        if self.discrete:
            idx = actions.long().view(1, -1, 1).expand(2, -1, 1)
            return critic(states).gather(-1, idx).squeeze(-1)
        return critic(states, actions)

    # ------------------------------------------------------------------ losses
    @torch.no_grad()
    def target(self, batch: Batch, generator: torch.Generator) -> Tensor:
        """y = c r + gamma (1 - end) E_{a'~pi}[min_i Q'_i(s', a') - alpha log pi(a'|s')], c = reward_scale."""
        if self.discrete:
            log_pi = self.log_pi(batch.next_states, batch.next_log_pb)
            q = self.critic_target(batch.next_states).min(0).values
            v = (log_pi.exp() * (q - self.alpha * log_pi)).sum(-1)
        else:
            a, log_p = self.gaussian.sample(batch.next_states, generator)
            v = self.critic_target(batch.next_states, a).min(0).values - self.alpha * log_p
        return self.config.reward_scale * batch.rewards + self.gamma * (~batch.end).float() * v

    def critic_loss(self, batch: Batch, generator: torch.Generator) -> Tensor:
        """Mean squared Bellman error of both critics (the actor only samples, without gradients)."""
        y = self.target(batch, generator)
        q = self.q_taken(self.critic, batch.states, batch.actions)
        return F.mse_loss(q, y.expand_as(q), reduction="none").sum(0).mean()

    def actor_loss(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, entropy [n], entropy target [n]); critics frozen during the call.

        loss = E_s E_{a~pi}[alpha log pi(a|s) - min_i Q_i(s, a)] + w KL(pi||pi_b)
               + w_bc E_{(s, a) in data}[-log pi(a|s)].
        """
        c = self.config.constraint
        real = batch.is_real
        with frozen(self.critic):
            if self.discrete:
                log_pi = self.log_pi(batch.states, batch.log_pb)
                pi = log_pi.exp()
                q = self.critic(batch.states).min(0).values
                per_state = (pi * (self.alpha * log_pi - q)).sum(-1)
                if c.kl_weight > 0:
                    per_state = per_state + c.kl_weight * kl_to_clinician(log_pi, batch.log_pb)
                entropy = -(pi * log_pi).sum(-1)
                mask = self.mask(batch.log_pb)
                n_allowed = torch.full_like(entropy, q.shape[-1]) if mask is None else mask.sum(-1).float()
                target = self.config.target_entropy_ratio * n_allowed.log()
                data_log_lik = log_pi[real].gather(-1, batch.actions[real].long().unsqueeze(-1)).squeeze(-1)
            else:
                a, log_p = self.gaussian.sample(batch.states, generator)
                per_state = self.alpha * log_p - self.critic(batch.states, a).min(0).values
                entropy = -log_p
                target = torch.full_like(entropy, -float(a.shape[-1]))
                data_log_lik = self.gaussian.log_likelihood(batch.states[real], batch.actions[real])
        loss = per_state.mean()
        if c.bc_weight > 0 and data_log_lik.numel() > 0:
            loss = loss - c.bc_weight * data_log_lik.mean()
        return loss, entropy.detach(), target

    def alpha_loss(self, entropy: Tensor, target: Tensor) -> Tensor:
        """J(alpha) = log alpha * (H(pi) - H_target): alpha falls while entropy exceeds its target."""
        return self.log_alpha * (entropy - target).detach().mean()

    def update_targets(self) -> None:
        polyak_update(self.critic_target, self.critic, self.config.polyak)


Optimise = Callable[[str, Tensor], None]  # (optimiser name, loss): zero_grad, backward, step


def sac_optimiser_groups(agent: SacAgent) -> dict[str, tuple[list[nn.Parameter], float]]:
    """Separate Adam optimisers: critics (lr), actor (actor_lr), temperature (actor_lr)."""
    c = agent.config
    return {"critic": (list(agent.critic.parameters()), c.lr),
            "actor": (list(agent.actor.parameters()), c.actor_lr),
            "alpha": ([agent.log_alpha], c.actor_lr)}


def sac_update(agent: SacAgent, batch: Batch, generator: torch.Generator, optimise: Optimise) -> dict[str, Tensor]:
    """One SAC update: critics, then actor, then temperature, then the target critics."""
    critic_loss = agent.critic_loss(batch, generator)
    optimise("critic", critic_loss)
    actor_loss, entropy, target = agent.actor_loss(batch, generator)
    optimise("actor", actor_loss)
    if agent.config.auto_alpha:
        optimise("alpha", agent.alpha_loss(entropy, target))
    agent.update_targets()
    return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
            "alpha": agent.alpha, "entropy": entropy.mean()}
