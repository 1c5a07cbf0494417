"""Rollouts in the learned environment: stopping rules, HALT, finished rows stay finished."""

from __future__ import annotations

import torch

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.dynamics import DynamicsEnsemble, LearnedEnvironment, rollout, start_states


def _no_treatment(states: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    return torch.zeros(states.shape[0], dtype=torch.int64)


def test_rollout_stops_rows_at_end(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    s, k = start_states(toy.split("train"))
    out = rollout(ensemble, _no_treatment, s, k, horizon=ensemble.n_steps + 2, generator=torch.Generator().manual_seed(0))
    ended = (out.done | out.truncated) & out.valid
    after_end = torch.cumsum(ended.long(), dim=0) - ended.long() > 0
    assert not (out.valid & after_end).any()  # nothing happens after death/discharge/window end
    assert out.valid[0].all()
    assert torch.all(out.steps[out.valid] < ensemble.n_steps)
    assert (out.truncated & out.valid).any()
    flat = out.flat()
    assert flat["rewards"].shape[0] == int(out.valid.sum())
    same = rollout(ensemble, _no_treatment, s, k, horizon=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.next_states, out.next_states[:3])


def test_halt_threshold_stops_rows(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    s, k = start_states(toy.split("train"))
    out = rollout(ensemble, _no_treatment, s, k, horizon=4, generator=torch.Generator().manual_seed(0),
                  halt_threshold=0.0)
    assert out.halted[0].all() and out.states.shape[0] == 1  # every row is past a zero threshold
    big = rollout(ensemble, _no_treatment, s, k, horizon=2, generator=torch.Generator().manual_seed(0),
                  halt_threshold=1e9)
    assert not big.halted.any()


def test_environment_freezes_finished_rows(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    env = LearnedEnvironment(ensemble, start_states(toy.split("train")), torch.Generator().manual_seed(0))
    states, steps = env.reset(64)
    assert states.shape == (64, len(toy.feature_names))
    finished = torch.zeros(64, dtype=torch.bool)
    for _ in range(ensemble.n_steps + 1):
        before = env.states.clone()
        nxt, reward, done, trunc = env.step(torch.zeros(64, dtype=torch.int64))
        assert torch.all(reward[finished] == 0) and not (done | trunc)[finished].any()
        assert torch.equal(nxt[finished], before[finished])
        finished |= done | trunc
    assert finished.all()  # every simulated stay ends within the window
