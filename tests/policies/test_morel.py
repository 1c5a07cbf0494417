"""MOReL's unknown-region detector and absorbing HALT state."""

from __future__ import annotations

import pytest
import torch

from clinical_mborl.dynamics import ModelStep
from clinical_mborl.policies import MorelConfig, train_policy
from clinical_mborl.policies.morel import MorelSystem, PessimisticMDP, halt_reward
from clinical_mborl.policies.system import prepare

from .conftest import FAST_MODEL, Cohort


def _step(disagreement: list[float]) -> ModelStep:
    n = len(disagreement)
    return ModelStep(next_states=torch.zeros(n, 4), rewards=torch.linspace(-1, 1, n),
                     done=torch.zeros(n, dtype=torch.bool), truncated=torch.zeros(n, dtype=torch.bool),
                     died=torch.zeros(n, dtype=torch.bool), disagreement=torch.tensor(disagreement),
                     uncertainty=torch.zeros(n), member=torch.zeros(n, dtype=torch.long))


def test_halt_exactly_where_disagreement_exceeds_the_threshold() -> None:
    mdp = PessimisticMDP(threshold=0.5, halt=-13.0)
    step = _step([0.1, 0.5, 0.51, 2.0])
    rewards, halt = mdp(step)
    assert halt.tolist() == [False, False, True, True]
    assert rewards[:2].tolist() == step.rewards[:2].tolist()
    assert rewards[2:].tolist() == [-13.0, -13.0]
    assert mdp.halt_rate == 0.5


def test_halt_reward_is_the_worst_return_minus_an_optional_margin() -> None:
    rewards, end = torch.tensor([0.0, 0.0, -1.0, 1.0]), torch.tensor([False, False, True, True])
    assert halt_reward(rewards, end, gamma=0.99, window_steps=6, scale=0.0) == pytest.approx(-1.0)
    assert halt_reward(rewards, end, gamma=0.99, window_steps=6, scale=1.0) == pytest.approx(-1.0 - 2.0 * 6)
    assert halt_reward(rewards, end, gamma=0.5, window_steps=6, scale=1.0) == pytest.approx(-1.0 - 2.0 * 2)
    step_costs = torch.tensor([-0.1, 0.0, -1.0, 1.0])  # intermediate rewards lower the bound
    assert halt_reward(step_costs, end, gamma=0.99, window_steps=6, scale=0.0) == pytest.approx(-0.6 - 1.0)


@pytest.mark.parametrize("kappa, halts", [(1e-6, True), (1e6, False)])
def test_rollouts_send_unknown_state_actions_to_halt(cohort: Cohort, kappa: float, halts: bool) -> None:
    c = cohort
    # a HALT margin and no support penalty, so HALT rows are recognisable by their reward
    config = MorelConfig().replace(kappa=kappa, n_updates=1, halt_penalty_scale=1.0,
                                   **{**FAST_MODEL, "constraint": {"support_threshold": 0.0}})
    data = prepare(c.transitions, c.behavior, c.dynamics, config, "morel", needs_dynamics=True)
    system = MorelSystem(config, data, c.dynamics)
    threshold = kappa * c.dynamics.data_disagreement(c.transitions.split("train"))
    assert system.mdp.threshold == pytest.approx(threshold)
    generated = system.rollout()
    halted = generated.rewards == system.mdp.halt
    assert bool(halted.any()) is halts
    assert generated.end[halted].all()  # HALT is absorbing: no bootstrap past it
    if halts:  # every first step is unknown with a near-zero threshold
        assert system.mdp.halt_rate == 1.0 and halted.all()


def test_halt_rate_is_recorded_while_training(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    policy = train_policy("morel", c.transitions, c.behavior, c.dynamics,
                          MorelConfig().replace(kappa=1e-6, n_updates=12, **FAST_MODEL))
    assert all(row["halt_rate"] == 1.0 for row in policy.history)
    assert policy.config["halt_reward"] == pytest.approx(-1.0)  # toy: worst return is death
