"""Estimators against exact values on tabular MDPs (truth by a linear solve)."""

from __future__ import annotations

import numpy as np
import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import (
    DoublyRobust,
    FittedQEvaluation,
    ModelBasedEstimate,
    OnPolicyValue,
    OPEData,
    PerDecisionWIS,
    ResamplePlan,
    WeightedDoublyRobust,
    WeightedImportanceSampling,
    bootstrap_interval,
    make_estimator,
)

from .tabular import (
    ope_data,
    q_values,
    random_mdp,
    random_policy,
    simulate,
    tabular_policies,
    true_value,
)

ALL_IS = [WeightedImportanceSampling(), PerDecisionWIS(), DoublyRobust(), WeightedDoublyRobust()]


@pytest.fixture(scope="module")
def setting():
    mdp, pi_b, pi_e = tabular_policies(3.0)
    return mdp, pi_b, pi_e


def test_linear_solve_matches_backward_induction_and_monte_carlo(setting):
    mdp, _, pi_e = setting
    _, v = q_values(mdp, pi_e)
    assert true_value(mdp, pi_e) == pytest.approx(float(mdp.mu0 @ v[0]), abs=1e-12)
    ep = simulate(mdp, pi_e, 100_000, np.random.default_rng(0))
    returns = ep.rewards @ mdp.gamma ** np.arange(mdp.horizon)
    assert abs(returns.mean() - true_value(mdp, pi_e)) < 4 * returns.std() / np.sqrt(returns.size)


@pytest.mark.parametrize("estimator", ALL_IS[:2], ids=lambda e: e.name)
def test_on_policy_estimators_equal_the_mean_return(setting, estimator):
    mdp, pi_b, _ = setting
    ep = simulate(mdp, pi_b, 500, np.random.default_rng(3))
    data = ope_data(mdp, ep, pi_b, pi_b)
    mean_return = OnPolicyValue().estimate(data)
    assert mean_return == pytest.approx(float(data.returns().mean()), abs=1e-12)
    # all weights are 1: WIS and PDWIS reduce to the mean observed return
    assert estimator.estimate(data) == pytest.approx(mean_return, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("estimator", [DoublyRobust(), WeightedDoublyRobust(), FittedQEvaluation()],
                         ids=lambda e: e.name)
def test_dr_family_is_exact_with_exact_q_on_deterministic_dynamics(seed, estimator):
    # Deterministic transitions and rewards, exact Q: every stay's DR term equals V(s0), so
    # the estimate is the truth on any sample, however small (no variance from the Q part).
    mdp = random_mdp(10 + seed, deterministic=True)
    pi_b = random_policy(20 + seed, mdp.n_states, mdp.n_actions)
    pi_e = random_policy(30 + seed, mdp.n_states, mdp.n_actions, sharp=3.0)
    data = ope_data(mdp, simulate(mdp, pi_b, 25, np.random.default_rng(seed)), pi_b, pi_e)
    assert estimator.estimate(data) == pytest.approx(true_value(mdp, pi_e), abs=1e-10)


@pytest.mark.parametrize("estimator", ALL_IS, ids=lambda e: e.name)
def test_estimators_converge_to_the_truth(setting, estimator):
    mdp, pi_b, pi_e = setting
    truth, clinician = true_value(mdp, pi_e), true_value(mdp, pi_b)
    data = ope_data(mdp, simulate(mdp, pi_b, 40_000, np.random.default_rng(5)), pi_b, pi_e, q_scale=0.5)
    iv = bootstrap_interval(estimator, data, ResamplePlan(data.n_patients, 200, seed=1), method="percentile")
    se = (iv.high - iv.low) / (2 * 1.96)
    assert abs(iv.value - truth) < 4 * se + 1e-3
    # the test has power: the estimate is far from the clinician's value
    assert abs(iv.value - clinician) > 10 * se


def test_exact_q_removes_most_variance(setting):
    mdp, pi_b, pi_e = setting
    data = ope_data(mdp, simulate(mdp, pi_b, 4000, np.random.default_rng(6)), pi_b, pi_e)
    plan = ResamplePlan(data.n_patients, 300, seed=2)
    widths = {e.name: (lambda iv: iv.high - iv.low)(bootstrap_interval(e, data, plan, method="percentile"))
              for e in ALL_IS}
    assert widths["dr"] < 0.5 * widths["pdwis"]
    assert widths["wdr"] < 0.5 * widths["wis"]


def test_length_one_episodes_make_wis_and_pdwis_identical():
    rng = np.random.default_rng(0)
    data = OPEData.create(rng.normal(size=(50, 1)), np.ones((50, 1), bool), np.arange(50),
                          pb=rng.uniform(0.1, 1, (50, 1)), pe=rng.uniform(0, 1, (50, 1)), gamma=0.9)
    assert PerDecisionWIS().estimate(data) == pytest.approx(WeightedImportanceSampling().estimate(data))


def test_pdwis_keeps_ended_stays_in_the_step_normaliser():
    # Two stays, the first ends at step 0. At step 1 only the second has a reward, but the
    # normaliser still includes the first (absorbed, reward 0): 0.5*1 + gamma*(1*2/(1+1)).
    data = OPEData.create(rewards=np.array([[1.0, 0.0], [0.0, 2.0]]), mask=np.array([[True, False], [True, True]]),
                          patient=np.arange(2), pb=np.full((2, 2), 0.5), pe=np.full((2, 2), 0.5), gamma=0.5)
    assert PerDecisionWIS().estimate(data) == pytest.approx(0.5 * 1.0 + 0.5 * (2.0 / 2))


def test_clipping_changes_only_large_weights(setting):
    mdp, pi_b, pi_e = setting
    data = ope_data(mdp, simulate(mdp, pi_b, 300, np.random.default_rng(7)), pi_b, pi_e)
    w, _ = data.cumulative_weights()
    big = float(w.max())
    for name in ("wis", "pdwis", "dr", "wdr"):
        unclipped = make_estimator(name).estimate(data)
        assert make_estimator(name, clip=big * 1.01).estimate(data) == pytest.approx(unclipped, abs=1e-12)
        assert make_estimator(name, clip=big / 10).estimate(data) != pytest.approx(unclipped, abs=1e-6)


def test_softening_mixes_in_the_clinician():
    pe, pb = np.array([[0.0, 1.0]]), np.array([[0.25, 0.5]])
    data = OPEData.create(np.zeros((1, 2)), np.ones((1, 2), bool), np.zeros(1), pb=pb, pe=pe, gamma=1.0,
                          soften_epsilon=0.1)
    np.testing.assert_allclose(data.pe, [[0.025, 0.95]])
    np.testing.assert_allclose(data.ratios(), [[0.1, 1.9]])


def test_missing_inputs_are_refused_with_a_fix():
    data = OPEData.create(np.zeros((2, 1)), np.ones((2, 1), bool), np.arange(2), pb=np.ones((2, 1)),
                          pe=np.ones((2, 1)), gamma=1.0)
    with pytest.raises(InputError, match="Q-model"):
        DoublyRobust().estimate(data)
    with pytest.raises(InputError, match="roll the policy out"):
        ModelBasedEstimate().estimate(data)
    with pytest.raises(InputError, match="unknown OPE estimator"):
        make_estimator("magic")
    with pytest.raises(InputError, match="probability 0"):
        OPEData.create(np.zeros((1, 1)), np.ones((1, 1), bool), np.zeros(1), pb=np.zeros((1, 1)),
                       pe=np.ones((1, 1)), gamma=1.0)
    with pytest.raises(InputError, match="start at step 0"):
        OPEData.create(np.zeros((1, 2)), np.array([[False, True]]), np.zeros(1), pb=np.ones((1, 2)),
                       pe=np.ones((1, 2)), gamma=1.0)
    with pytest.raises(InputError, match="return_bounds"):
        OPEData.create(np.full((1, 1), 5.0), np.ones((1, 1), bool), np.zeros(1), pb=np.ones((1, 1)),
                       pe=np.ones((1, 1)), gamma=1.0, return_bounds=(-1.0, 1.0))


def test_model_based_estimate_is_the_mean_rollout_return():
    data = OPEData.create(np.zeros((3, 1)), np.ones((3, 1), bool), np.array([0, 0, 1]), pb=np.ones((3, 1)),
                          pe=np.ones((3, 1)), gamma=1.0, model_returns=np.array([1.0, 2.0, 6.0]),
                          return_bounds=(0.0, 10.0))
    assert ModelBasedEstimate().estimate(data) == pytest.approx(3.0)


def test_an_estimate_outside_the_return_range_is_projected_onto_it():
    # rollouts of a wrong model can average 3 where no return exceeds 1: the truth is <= 1, so the
    # projection onto [0, 1] is strictly closer to it
    data = OPEData.create(np.zeros((3, 1)), np.ones((3, 1), bool), np.array([0, 0, 1]), pb=np.ones((3, 1)),
                          pe=np.ones((3, 1)), gamma=1.0, model_returns=np.array([1.0, 2.0, 6.0]),
                          return_bounds=(0.0, 1.0))
    est = ModelBasedEstimate()
    assert est.value_from_sums(est.episode_stats(data).sum(axis=0)) == pytest.approx(3.0)
    assert est.estimate(data) == 1.0


def test_zero_weight_everywhere_is_undefined_not_zero():
    data = OPEData.create(np.ones((3, 1)), np.ones((3, 1), bool), np.arange(3), pb=np.ones((3, 1)),
                          pe=np.zeros((3, 1)), gamma=1.0)
    assert np.isnan(WeightedImportanceSampling().estimate(data))
