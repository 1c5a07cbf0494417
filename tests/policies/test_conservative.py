"""The conservative terms of CQL and COMBO push Q up on data actions and down elsewhere."""

from __future__ import annotations

import math

import pytest
import torch

from clinical_mborl.policies import ComboConfig
from clinical_mborl.policies.buffers import Batch, concat
from clinical_mborl.policies.combo import combo_critic_loss, sampled_logsumexp
from clinical_mborl.policies.cql import cql_term
from clinical_mborl.policies.networks import DiscreteQ, TwinContinuousQ
from clinical_mborl.policies.sac import SacAgent

from .conftest import Cohort


def _gap(q_all: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q(s, a_data) minus the mean Q of the other actions."""
    data = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    others = (q_all.sum(-1) - data) / (q_all.shape[-1] - 1)
    return (data - others).mean()


def test_cql_term_raises_q_on_data_actions_relative_to_others() -> None:
    torch.manual_seed(0)
    q = DiscreteQ(4, 9, (16,))
    states, actions = torch.randn(64, 4), torch.randint(0, 9, (64,))
    opt = torch.optim.SGD(q.parameters(), lr=0.1)
    before = _gap(q(states), actions).item()
    for _ in range(20):
        opt.zero_grad()
        cql_term(q(states), actions).backward()
        opt.step()
    assert _gap(q(states), actions).item() > before + 0.1


def test_cql_term_gradient_signs() -> None:
    q = torch.zeros(1, 3, requires_grad=True)
    cql_term(q, torch.tensor([1])).backward()
    assert q.grad is not None
    torch.testing.assert_close(q.grad, torch.tensor([[1 / 3, 1 / 3 - 1, 1 / 3]]))


def test_cql_term_is_nonnegative_and_zero_only_for_a_certain_winner() -> None:
    q = torch.tensor([[0.0, 50.0, 0.0], [1.0, 1.0, 1.0]])
    terms = [cql_term(q[i : i + 1], torch.tensor([1])).item() for i in range(2)]
    assert terms[0] == pytest.approx(0.0, abs=1e-6)
    assert terms[1] == pytest.approx(math.log(3.0))


def _agent(c: Cohort) -> SacAgent:
    torch.manual_seed(0)
    return SacAgent(4, c.transitions.manifest.action_space, ComboConfig(hidden=(16,)), 0.99)


class TableCritic(torch.nn.Module):
    """Twin tabular critics over one-hot states (no sharing between states): Q[i, s, a], or for
    doses Q[i, s] + w[i, s] . a."""

    def __init__(self, n_states: int, n_actions: int) -> None:
        super().__init__()
        self.q = torch.nn.Parameter(torch.zeros(2, n_states, n_actions))
        self.w = torch.nn.Parameter(torch.zeros(2, n_states, 2))

    def forward(self, states: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        idx = states.argmax(-1)
        if actions is None:
            return self.q[:, idx]
        return self.q[:, idx, 0] + (self.w[:, idx] * actions).sum(-1)


def _rows(states: torch.Tensor, actions: torch.Tensor, real: bool) -> Batch:
    n = states.shape[0]
    return Batch(states=states, actions=actions, rewards=torch.zeros(n), next_states=states,
                 end=torch.ones(n, dtype=torch.bool), is_real=torch.full((n,), real))


def test_combo_term_raises_data_q_and_lowers_q_at_model_states(cohort: Cohort) -> None:
    agent = _agent(cohort)
    n_actions = cohort.transitions.n_actions if agent.discrete else 1
    agent.critic = TableCritic(4, n_actions)
    eye = torch.eye(4)
    actions = torch.zeros(16, dtype=torch.long) if agent.discrete else torch.full((16, 2), -0.5)
    real = _rows(eye[[2, 3]].repeat(8, 1), actions, real=True)
    model = _rows(eye[[0, 1]].repeat(8, 1), actions, real=False)
    _, term = combo_critic_loss(agent, real, model, torch.Generator().manual_seed(0), 8)
    term.backward()
    grad = agent.critic.q.grad
    assert grad is not None
    if agent.discrete:
        assert (grad[:, 2:, 0] < 0).all()  # descent raises Q(s_data, a_data)
        assert (grad[:, 2:, 1:] == 0).all()  # other actions at data states: untouched
        assert (grad[:, :2] > 0).all()  # descent lowers every action's Q at model states
    else:
        assert (grad[:, 2:, 0] < 0).all() and (grad[:, :2, 0] > 0).all()


def test_combo_bellman_part_matches_the_sac_critic_loss(cohort: Cohort) -> None:
    agent = _agent(cohort)
    n = cohort.transitions.n_actions if agent.discrete else None
    states = torch.randn(16, 4)
    actions = torch.randint(0, n, (16,)) if n else torch.rand(16, 2) * 2 - 1
    real, model = _rows(states[:8], actions[:8], True), _rows(states[8:], actions[8:], False)
    bellman, _ = combo_critic_loss(agent, real, model, torch.Generator().manual_seed(0), 4)
    reference = agent.critic_loss(concat([real, model]), torch.Generator().manual_seed(0))
    torch.testing.assert_close(bellman, reference)


def test_sampled_logsumexp_is_exact_for_a_flat_critic(continuous_cohort: Cohort) -> None:
    """With Q = c everywhere, log of the integral of exp(Q) over [-1, 1]^k is c + k log 2; the
    uniform half of the estimate is exact, so the estimate is within log 2 of it."""
    agent = _agent(continuous_cohort)
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.zero_()
        critic = agent.critic
        assert isinstance(critic, TwinContinuousQ)
        critic.net.biases[-1].fill_(1.5)
    est = sampled_logsumexp(agent, torch.randn(16, 4), torch.Generator().manual_seed(0), 64)
    exact = 1.5 + 2 * math.log(2.0)
    assert est.shape == (2, 16)
    assert ((est - exact).abs() < math.log(2.0) + 1e-4).all()
