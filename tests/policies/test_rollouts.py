"""Branched model rollouts: starts, termination, clinician probabilities and the support penalty."""

from __future__ import annotations

import torch

from clinical_mborl.policies import ComboConfig
from clinical_mborl.policies.buffers import Batch
from clinical_mborl.policies.constraints import ClinicianPrior, ConstraintConfig
from clinical_mborl.policies.rollouts import branch_rollouts, keep_reward
from clinical_mborl.policies.sac import SacAgent
from clinical_mborl.policies.system import TrainingData, prepare

from .conftest import Cohort


def _setup(c: Cohort, constraint: ConstraintConfig) -> tuple[SacAgent, TrainingData, ComboConfig]:
    config = ComboConfig(hidden=(16,), constraint=constraint)
    data = prepare(c.transitions, c.behavior, c.dynamics, config, "combo", needs_dynamics=True)
    agent = SacAgent(data.in_dim, c.transitions.manifest.action_space, config, data.gamma)
    return agent, data, config


def _roll(c: Cohort, constraint: ConstraintConfig, horizon: int = 3) -> tuple[Batch, Batch, TrainingData]:
    agent, data, _ = _setup(c, constraint)
    start = data.real.index(torch.arange(40))
    out = branch_rollouts(c.dynamics, agent.act, agent.env_actions, start, horizon,
                          torch.Generator().manual_seed(0), keep_reward, data.prior, constraint)
    return out, start, data


def test_rollouts_start_at_the_given_states_and_stop_at_the_end(cohort: Cohort) -> None:
    out, start, _ = _roll(cohort, ConstraintConfig(support_threshold=0.1))
    assert torch.equal(out.states[:40], start.states)
    assert 40 <= len(out) <= 3 * 40
    assert not out.is_real.any()
    n_first_alive = int((~out.end[:40]).sum())
    assert len(out) - 40 <= 2 * n_first_alive  # ended trajectories are not continued


def test_discrete_rollouts_carry_the_clinician_probabilities(discrete_cohort: Cohort) -> None:
    c = discrete_cohort
    out, start, _ = _roll(c, ConstraintConfig(support_threshold=0.1))
    prior = ClinicianPrior(c.behavior, c.transitions.normalizer, c.transitions.manifest.action_space)
    assert out.log_pb is not None and out.next_log_pb is not None
    torch.testing.assert_close(out.next_log_pb, prior.log_proba(out.next_states))
    torch.testing.assert_close(out.log_pb[:40], start.log_pb)


def test_only_the_policys_doses_pay_the_support_penalty(continuous_cohort: Cohort) -> None:
    c = continuous_cohort
    strict = ConstraintConfig(support_threshold=0.5, support_penalty=1.0)
    penalised, _, data = _roll(c, strict)
    free, _, _ = _roll(c, ConstraintConfig(support_threshold=0.0))
    assert torch.equal(penalised.actions, free.actions)  # same random numbers, same policy
    gap = free.rewards - penalised.rewards
    assert (gap >= 0).all() and (gap > 0).any()
    recorded = c.transitions.split("train").arrays().rewards
    torch.testing.assert_close(data.real.rewards, torch.as_tensor(recorded))  # never charged
