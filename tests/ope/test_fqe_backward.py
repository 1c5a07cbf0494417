"""Backward-induction FQE: tabular exactness, no feedback from earlier steps, clear refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.fqe import FQEConfig, fit_fqe
from clinical_mborl.ope.fqe_backward import window_steps
from clinical_mborl.ope.sensitivity import fit_sensitivity_fqe

from .tabular import (
    assert_reaches_empirical_q,
    fqe_data,
    tabular_features,
    tabular_problem,
)

BACKWARD = FQEConfig(schedule="backward", hidden_sizes=(), steps_per_stage=400, batch_size=100_000,
                     learning_rate=0.1, n_members=1)


@pytest.fixture(scope="module")
def tabular():
    mdp, _, pi_e, ep = tabular_problem(2000, sharp=3.0)
    return mdp, pi_e, ep, fqe_data(mdp, ep, pi_e, with_step=True)


def test_backward_fqe_reaches_the_empirical_mdp_fixed_point(tabular):
    mdp, pi_e, ep, data = tabular
    model = fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, BACKWARD)
    feats = tabular_features(mdp, with_step=True)
    q = model.q_values(feats.reshape(-1, feats.shape[-1])).reshape(mdp.horizon, mdp.n_states, mdp.n_actions)
    assert_reaches_empirical_q(q, mdp, ep, pi_e)


def test_earlier_steps_never_feed_back_into_later_ones(tabular):
    mdp, _, _, data = tabular
    config = BACKWARD.model_copy(update={"hidden_sizes": (8,), "steps_per_stage": 30, "n_members": 2})
    first = fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, config)
    t = window_steps(data.features, mdp.horizon)
    changed = replace(data, rewards=np.where(t == 0, -data.rewards, data.rewards))  # same scale
    second = fit_fqe(changed, mdp.n_actions, mdp.gamma, mdp.horizon, config)
    feats = tabular_features(mdp, with_step=True)
    for step in range(1, mdp.horizon):
        np.testing.assert_array_equal(first.member_q_values(feats[step]), second.member_q_values(feats[step]))
    assert not np.allclose(first.member_q_values(feats[0]), second.member_q_values(feats[0]))
    # and the same fit twice is the same model
    np.testing.assert_array_equal(first.member_q_values(feats[0]),
                                  fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, config).member_q_values(feats[0]))


def test_window_steps_refuses_features_without_a_step_one_hot():
    x = np.zeros((3, 5), dtype=np.float32)
    x[:, -2] = 1.0
    assert window_steps(x, 2).tolist() == [0, 0, 0]
    x[1, -1] = 1.0
    with pytest.raises(InputError, match=r"one-hot window step \(rows \[1\]"):
        window_steps(x, 2)


def test_sensitivity_bounds_refuse_the_backward_schedule(tabular):
    mdp, _, _, data = tabular
    data = replace(data, behavior_prob=np.full(len(data.actions), 0.5))
    with pytest.raises(InputError, match="schedule 'iterative'"):
        fit_sensitivity_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, 1.5, "lower", BACKWARD)


def test_steps_without_fit_rows_take_the_nearest_fitted_step(tabular):
    mdp, _, _, data = tabular
    t = window_steps(data.features, mdp.horizon)
    last = mdp.horizon - 1
    kept = data.rows((t != 1) & (t != last))  # no rows at step 1 and at the last step
    config = BACKWARD.model_copy(update={"hidden_sizes": (4,), "steps_per_stage": 5, "n_members": 2})
    nets = fit_fqe(kept, mdp.n_actions, mdp.gamma, mdp.horizon, config).net.nets
    for target, source in [(1, 2), (last, last - 1)]:
        for a, b in zip(nets[target].parameters(), nets[source].parameters(), strict=True):
            assert a.data.equal(b.data)
    assert not next(nets[0].parameters()).data.equal(next(nets[2].parameters()).data)
