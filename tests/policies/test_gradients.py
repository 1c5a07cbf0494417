"""Gradient isolation: critic losses never touch the actor, actor losses never touch the critics."""

from __future__ import annotations

import pytest
import torch

from clinical_mborl.policies import ComboConfig
from clinical_mborl.policies.buffers import Batch
from clinical_mborl.policies.combo import combo_critic_loss
from clinical_mborl.policies.constraints import ConstraintConfig
from clinical_mborl.policies.sac import SacAgent
from clinical_mborl.policies.system import prepare

from .conftest import Cohort


def _agent_and_batch(c: Cohort, bc_weight: float = 0.5, kl_weight: float = 0.0) -> tuple[SacAgent, Batch]:
    constraint = ConstraintConfig(support_threshold=0.1, bc_weight=bc_weight, kl_weight=kl_weight)
    config = ComboConfig(hidden=(16,), constraint=constraint)
    data = prepare(c.transitions, c.behavior, c.dynamics, config, "combo", needs_dynamics=True)
    agent = SacAgent(data.in_dim, c.transitions.manifest.action_space, config, data.gamma)
    return agent, data.real.index(torch.arange(64))


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def _untouched(module: torch.nn.Module) -> bool:
    return all(g is None or not bool(g.any()) for g in _grads(module))


def _touched(module: torch.nn.Module) -> bool:
    return any(g is not None and bool(g.abs().sum() > 0) for g in _grads(module))


def test_critic_loss_leaves_the_actor_untouched(cohort: Cohort) -> None:
    agent, batch = _agent_and_batch(cohort)
    agent.critic_loss(batch, torch.Generator().manual_seed(0)).backward()
    assert _touched(agent.critic)
    assert _untouched(agent.actor) and agent.log_alpha.grad is None
    assert _untouched(agent.critic_target)


def test_actor_loss_leaves_the_critics_untouched(cohort: Cohort) -> None:
    agent, batch = _agent_and_batch(cohort, kl_weight=0.3 if cohort.kind == "discrete" else 0.0)
    loss, entropy, target = agent.actor_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert _touched(agent.actor)
    assert _untouched(agent.critic) and agent.log_alpha.grad is None
    assert all(p.requires_grad for p in agent.critic.parameters())  # frozen only during the call
    assert not entropy.requires_grad and entropy.shape == target.shape == (len(batch),)


def test_actor_step_does_not_move_the_critics(cohort: Cohort) -> None:
    agent, batch = _agent_and_batch(cohort)
    before = [p.detach().clone() for p in agent.critic.parameters()]
    opt = torch.optim.Adam(agent.actor.parameters(), lr=1e-2)
    loss, _, _ = agent.actor_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, agent.critic.parameters(), strict=True))


def test_alpha_loss_only_moves_the_temperature(cohort: Cohort) -> None:
    agent, batch = _agent_and_batch(cohort)
    _, entropy, target = agent.actor_loss(batch, torch.Generator().manual_seed(0))
    agent.alpha_loss(entropy, target).backward()
    assert agent.log_alpha.grad is not None
    assert _untouched(agent.actor) and _untouched(agent.critic)


def test_combo_critic_loss_trains_critics_only(cohort: Cohort) -> None:
    agent, batch = _agent_and_batch(cohort)
    real, model = batch.index(torch.arange(32)), batch.index(torch.arange(32, 64))
    bellman, term = combo_critic_loss(agent, real, model, torch.Generator().manual_seed(0), n_samples=4)
    (bellman + term).backward()
    assert _touched(agent.critic)
    assert _untouched(agent.actor)


@pytest.mark.parametrize("bc_weight", [0.0, 2.0])
def test_bc_weight_adds_the_data_log_likelihood_to_the_actor_loss(continuous_cohort: Cohort, bc_weight: float) -> None:
    agent, batch = _agent_and_batch(continuous_cohort, bc_weight=bc_weight)
    loss, _, _ = agent.actor_loss(batch, torch.Generator().manual_seed(0))
    free, _, _ = _agent_and_batch(continuous_cohort, bc_weight=0.0)[0].actor_loss(batch, torch.Generator().manual_seed(0))
    nll = -agent.gaussian.log_likelihood(batch.states, batch.actions).mean()
    torch.testing.assert_close(loss, free + bc_weight * nll)
