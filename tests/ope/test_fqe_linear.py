"""Linear FQE with each iteration solved exactly (`ope.fqe_linear`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import DoublyRobust, FittedQEvaluation, WeightedDoublyRobust
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.fqe import FQEConfig, FQEData, fit_fqe, fit_q_model
from clinical_mborl.ope.fqe_linear import normal_matrix
from tests.ope.tabular import (
    assert_reaches_empirical_q,
    empirical_q,
    fqe_data,
    tabular_features,
    tabular_problem,
    true_value,
)

EXACT = FQEConfig(function_class="linear", hidden_sizes=(), n_members=1, shared_penalty=1e-8, action_penalty=1e-8)


def _tabular_q(config: FQEConfig) -> tuple:
    mdp, pi_b, pi_e, ep = tabular_problem(2000, sharp=3.0)
    model = fit_fqe(fqe_data(mdp, ep, pi_e), mdp.n_actions, mdp.gamma, mdp.horizon, config)
    feats = tabular_features(mdp)
    q = model.q_values(feats.reshape(-1, feats.shape[-1])).reshape(mdp.horizon, mdp.n_states, mdp.n_actions)
    return mdp, pi_b, pi_e, ep, q


def test_tabular_linear_fqe_is_the_empirical_mdp_fixed_point_and_feeds_fqe_dr_wdr():
    mdp, pi_b, pi_e, ep, q = _tabular_q(EXACT)
    assert_reaches_empirical_q(q, mdp, ep, pi_e)
    q_emp, counts = empirical_q(mdp, ep, pi_e)
    assert np.abs(q - q_emp)[counts > 0].max() < 1e-4  # solved, not approached: no optimisation budget
    t = np.broadcast_to(np.arange(mdp.horizon), ep.states.shape)
    data = OPEData.create(ep.rewards, ep.mask, np.arange(ep.mask.shape[0]), pb=pi_b[ep.states, ep.actions],
                          pe=pi_e[ep.states, ep.actions], gamma=mdp.gamma, q_sa=q[t, ep.states, ep.actions],
                          v_s=(pi_e[ep.states] * q[t, ep.states]).sum(axis=2))
    truth, clinician = true_value(mdp, pi_e), true_value(mdp, pi_b)
    for est in (FittedQEvaluation(), DoublyRobust(), WeightedDoublyRobust()):
        assert abs(est.estimate(data) - truth) < 0.1 < abs(est.estimate(data) - clinician)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), d=st.integers(1, 4), a=st.integers(1, 4), seed=st.integers(0, 10_000),
       lam=st.floats(1e-3, 10.0), mu=st.floats(1e-3, 10.0))
def test_normal_matrix_is_the_weighted_gram_of_the_shared_plus_per_action_design(n, d, a, seed, lam, mu):
    rng = np.random.default_rng(seed)
    x, actions, w = rng.normal(size=(n, d)), rng.integers(0, a, n), rng.exponential(size=n)
    phi = np.zeros((n, d * (a + 1)))
    phi[:, :d] = x
    for i in range(n):
        phi[i, d * (actions[i] + 1): d * (actions[i] + 2)] = x[i]
    penalty = np.diag([lam] * d + [mu] * (d * a))
    np.testing.assert_allclose(normal_matrix(x, actions, w, a, lam, mu), phi.T @ (w[:, None] * phi) + penalty,
                               atol=1e-10)


def _rare_action_data(n_common: int = 300, n_rare: int = 3) -> FQEData:
    """One state; action 0 (common) returns 0, action 1 (rare) returns 1; one step."""
    n = n_common + n_rare
    return FQEData(features=np.ones((n, 1), np.float32), actions=np.r_[np.zeros(n_common), np.ones(n_rare)].astype(int),
                   rewards=np.r_[np.zeros(n_common), np.ones(n_rare)], end=np.ones(n, bool),
                   next_features=np.zeros((n, 1), np.float32), next_policy=np.full((n, 2), 0.5), patient=np.arange(n))


def test_the_action_penalty_pulls_a_rarely_given_dose_toward_the_shared_q():
    data, x = _rare_action_data(), np.ones((1, 1), np.float32)
    rare = [float(fit_fqe(data, 2, 0.9, 1, EXACT.model_copy(update={"action_penalty": p})).q_values(x)[0, 1])
            for p in (1e-8, 3.0, 300.0)]
    common = float(fit_fqe(data, 2, 0.9, 1, EXACT).q_values(x)[0, 0])
    assert rare[0] == pytest.approx(1.0, abs=1e-4) and common == pytest.approx(0.0, abs=1e-4)
    assert rare[0] > rare[1] > rare[2]  # more penalty, nearer the shared (mostly action-0) value
    assert rare[2] < 0.1


def test_members_are_bayesian_bootstrap_refits_and_deterministic():
    mdp, _, pi_e, ep = tabular_problem(300, sharp=3.0)
    data = fqe_data(mdp, ep, pi_e)
    cfg = FQEConfig(function_class="linear", hidden_sizes=(), n_members=4, seed=3)
    feats = tabular_features(mdp).reshape(-1, mdp.horizon * mdp.n_states)
    a, b = (fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, cfg) for _ in range(2))
    members = a.member_q_values(feats)
    assert members.shape == (4, len(feats), mdp.n_actions)
    np.testing.assert_array_equal(members, b.member_q_values(feats))
    assert np.ptp(members, axis=0).max() > 1e-3  # each member saw other patient weights
    np.testing.assert_allclose(a.q_values(feats), members.mean(axis=0))


def test_linear_settings_are_checked():
    with pytest.raises(ValidationError, match="hidden_sizes"):
        FQEConfig(function_class="linear")
    with pytest.raises(ValidationError, match="schedule"):
        FQEConfig(function_class="linear", hidden_sizes=(), schedule="backward")
    with pytest.raises(ValidationError, match="steps_per_iteration"):
        FQEConfig(function_class="linear", hidden_sizes=(), steps_per_iteration=32)
    with pytest.raises(ValidationError, match="steps_per_iteration"):
        FQEConfig(schedule="backward", steps_per_iteration=32)
    with pytest.raises(InputError, match="function_class 'network'"):
        fit_q_model(_rare_action_data(), 2, 2, 1, EXACT, None, lambda *args: None)  # type: ignore[arg-type,return-value]
