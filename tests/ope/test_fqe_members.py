"""Bootstrapped FQE: members are refits on patient resamples, and the OPE bootstrap pairs each
resample with one member, so Q-fitting variability reaches the interval."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import (
    FittedQEvaluation,
    OnPolicyValue,
    OPEConfig,
    OPEData,
    WeightedDoublyRobust,
)
from clinical_mborl.ope.evaluate import evaluate_arrays
from clinical_mborl.ope.fqe import FQEConfig, FQESystem, QNetwork, fit_fqe
from clinical_mborl.ope.fqe_batches import member_weights
from clinical_mborl.ope.intervals import ResamplePlan, bootstrap_all

from .tabular import Episodes, fqe_data, simulate, tabular_features, tabular_policies

TABULAR_MEMBERS = FQEConfig(hidden_sizes=(), epochs_per_iteration=60, batch_size=100_000, learning_rate=0.1,
                            n_members=3, seed=4)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=40), st.integers(1, 5), st.integers(0, 10_000))
def test_member_weights_are_bayesian_bootstrap_weights_of_patients(patients, n_members, seed):
    patient = np.array(patients)
    w = member_weights(patient, n_members, seed)
    assert w.shape == (len(patient), n_members)
    for p in np.unique(patient):  # every row of a patient carries the patient's weight
        assert (w[patient == p] == w[patient == p][0]).all()
    if n_members == 1:
        assert (w == 1).all()
    else:  # no patient ever drops out of a member (weights > 0), and members differ
        assert (w > 0).all() and not np.allclose(w[:, 0], w[:, 1])
    assert np.array_equal(w, member_weights(patient, n_members, seed))


def test_bayesian_bootstrap_weights_have_the_bootstrap_variance():
    w = member_weights(np.arange(200_000), 2, seed=0)
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.var() == pytest.approx(1.0, abs=0.02)


def _weighted_empirical_q(mdp, ep: Episodes, pi_e: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weighted count-MDP's Q (each episode counted `weight` times): weighted FQE's fixed point."""
    h, s_n, a_n = mdp.horizon, mdp.n_states, mdp.n_actions
    counts, r_sum, p_next = np.zeros((h, s_n, a_n)), np.zeros((h, s_n, a_n)), np.zeros((h, s_n, a_n, s_n))
    for t in range(h):
        m = ep.mask[:, t]
        s, a, w = ep.states[m, t], ep.actions[m, t], weight[m]
        np.add.at(counts[t], (s, a), w)
        np.add.at(r_sum[t], (s, a), w * ep.rewards[m, t])
        if t + 1 < h:
            cont = ep.mask[m, t + 1]
            np.add.at(p_next[t], (s[cont], a[cont], ep.states[m, t + 1][cont]), w[cont])
    safe = np.where(counts > 0, counts, 1.0)
    q, v_next = np.zeros((h, s_n, a_n)), np.zeros(s_n)
    for t in reversed(range(h)):
        q[t] = r_sum[t] / safe[t] + mdp.gamma * (p_next[t] / safe[t][..., None]) @ v_next
        v_next = (pi_e * q[t]).sum(axis=1)
    return q, counts


def test_each_member_reaches_the_fixed_point_of_its_own_weighted_data():
    mdp, pi_b, pi_e = tabular_policies(3.0)
    ep = simulate(mdp, pi_b, 600, np.random.default_rng(0))
    data = fqe_data(mdp, ep, pi_e)
    model = fit_fqe(data, mdp.n_actions, mdp.gamma, mdp.horizon, TABULAR_MEMBERS)
    feats = tabular_features(mdp).reshape(-1, mdp.horizon * mdp.n_states)
    q = model.member_q_values(feats).reshape(3, mdp.horizon, mdp.n_states, mdp.n_actions)
    weights = member_weights(data.patient, 3, TABULAR_MEMBERS.seed)
    per_episode = np.zeros((3, ep.mask.shape[0]))
    per_episode[:, data.patient] = weights.T
    fixed_points = []
    for m in range(3):
        q_emp, seen = _weighted_empirical_q(mdp, ep, pi_e, per_episode[m])
        assert np.abs(q[m] - q_emp)[seen > 0].max() < 0.02
        fixed_points.append(q_emp)
    # the members differ (their patients weigh differently) and q_values is their average
    assert np.abs(fixed_points[0] - fixed_points[1]).max() > 0.05
    assert np.allclose(model.q_values(feats), model.member_q_values(feats).mean(axis=0))


def test_a_member_gets_no_gradient_from_rows_outside_its_resample():
    torch.manual_seed(0)
    net = QNetwork(3, 2, (8,), n_members=2)
    system = FQESystem(net, gamma=0.9, scale=1.0, config=FQEConfig(epochs_per_iteration=1))
    n = 16
    weight = torch.stack([torch.ones(n), torch.zeros(n)], dim=1)  # member 1 drew none of these rows
    batch = (torch.randn(n, 3), torch.randint(0, 2, (n,)), torch.randn(n), torch.zeros(n, dtype=torch.bool),
             torch.randn(n, 3), torch.full((n, 2), 0.5), weight, torch.ones(n))
    system.training_step(batch, 0).backward()
    for w in net.weights:
        assert w.grad is not None and w.grad[0].abs().sum() > 0 and (w.grad[1] == 0).all()


def _data_with_members(shifts: np.ndarray, n: int = 300) -> tuple[OPEData, OPEData]:
    rng = np.random.default_rng(3)
    rewards = rng.choice([-1.0, 1.0], size=(n, 2))
    mask = np.ones((n, 2), bool)
    pb, pe = np.full((n, 2), 0.5), rng.uniform(0.2, 0.8, size=(n, 2))
    q, v = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    common = dict(rewards=rewards, mask=mask, patient=np.arange(n), pb=pb, pe=pe, gamma=0.9,
                  soften_epsilon=OPEConfig().soften_epsilon)
    shifted = v[None] + shifts[:, None, None] - shifts.mean()  # members average to v
    single = OPEData.create(**common, q_sa=q, v_s=v)
    members = OPEData.create(**common, q_sa_members=np.repeat(q[None], len(shifts), 0), v_s_members=shifted)
    return single, members


def test_identical_members_give_the_single_model_intervals():
    single, members = _data_with_members(np.zeros(4))
    plan = ResamplePlan(single.n_patients, 400, seed=1)
    ests = [FittedQEvaluation(), WeightedDoublyRobust()]
    a, b = bootstrap_all(ests, OnPolicyValue(), single, plan), bootstrap_all(ests, OnPolicyValue(), members, plan)
    for part_a, part_b in ((a[1], b[1]), (a[2], b[2])):
        for name in ("fqe", "wdr"):
            x, y = part_a[name], part_b[name]
            assert (y.value, y.low, y.high, y.lower_bound) == pytest.approx((x.value, x.low, x.high, x.lower_bound),
                                                                            rel=1e-9, abs=1e-12)


def test_resample_b_is_evaluated_with_member_b_mod_m():
    shifts = np.array([-0.3, 0.0, 0.4])
    single, members = _data_with_members(shifts)
    plan = ResamplePlan(single.n_patients, 600, seed=2)
    _, fixed, _ = bootstrap_all([FittedQEvaluation()], OnPolicyValue(), single, plan, 0.9, "percentile")
    _, refit, diff = bootstrap_all([FittedQEvaluation()], OnPolicyValue(), members, plan, 0.9, "percentile")
    counts = plan.counts()
    v0 = single.v_s[:, 0]
    boot = counts @ v0 / counts.sum(axis=1) + (shifts - shifts.mean())[np.arange(600) % 3]
    lo, hi, lower = np.quantile(boot, [0.05, 0.95, 0.10])
    got = refit["fqe"]
    assert got.value == pytest.approx(fixed["fqe"].value)  # the point estimate uses the average
    assert (got.low, got.high, got.lower_bound) == pytest.approx((lo, hi, lower))
    assert got.high - got.low > fixed["fqe"].high - fixed["fqe"].low + 0.3
    # the paired difference uses the same member for the same resample
    clin = counts @ single.returns() / counts.sum(axis=1)
    assert diff["fqe"].low == pytest.approx(np.quantile(boot - clin, 0.05))


def test_the_report_says_how_the_fqe_interval_was_made():
    _, members = _data_with_members(np.array([-0.1, 0.1]))
    rep = evaluate_arrays(members, OPEConfig(n_resamples=200, estimators=("wdr", "fqe")))
    fqe = rep.estimate("fqe").diagnostics
    assert fqe["q_members"] == 2 and "refitted" in str(fqe["interval_scope"])
    assert rep.estimate("wdr").diagnostics["q_members"] == 2


def test_members_without_their_values_are_refused():
    single, _ = _data_with_members(np.zeros(2))
    with pytest.raises(InputError, match="q_sa_members/v_s_members"):
        OPEData.create(single.rewards, single.mask, np.arange(single.n_episodes), single.pb, single.pe, 0.9,
                       q_sa_members=np.zeros((2, *single.mask.shape)))
    with pytest.raises(InputError, match=r"\[M, "):
        OPEData.create(single.rewards, single.mask, np.arange(single.n_episodes), single.pb, single.pe, 0.9,
                       q_sa_members=np.zeros((2, 3, 2)), v_s_members=np.zeros((2, 3, 2)))


def test_a_subgroup_of_everyone_pairs_members_like_the_overall_difference():
    from clinical_mborl.ope.subgroups import subgroup_differences

    _, members = _data_with_members(np.array([-0.2, 0.0, 0.3]))
    cfg = OPEConfig(n_resamples=300, seed=5, estimators=("fqe",))
    plan = ResamplePlan(members.n_patients, cfg.n_resamples, cfg.seed)
    _, _, diff = bootstrap_all([FittedQEvaluation()], OnPolicyValue(), members, plan, cfg.level, cfg.method)
    (sub,) = subgroup_differences(members, {"all": np.full(members.n_episodes, "yes")}, ("fqe",), cfg)
    assert (sub.ci_low, sub.ci_high, sub.lower_bound) == pytest.approx(
        (diff["fqe"].low, diff["fqe"].high, diff["fqe"].lower_bound))


def test_single_estimator_intervals_pair_members_as_bootstrap_all_does():
    from clinical_mborl.ope.intervals import bootstrap_interval, paired_difference

    _, members = _data_with_members(np.array([-0.25, 0.05, 0.2]))
    plan = ResamplePlan(members.n_patients, 300, seed=9)
    _, together, diffs = bootstrap_all([FittedQEvaluation()], OnPolicyValue(), members, plan)
    alone = bootstrap_interval(FittedQEvaluation(), members, plan)
    paired = paired_difference(FittedQEvaluation(), OnPolicyValue(), members, plan)
    assert (alone.low, alone.high) == pytest.approx((together["fqe"].low, together["fqe"].high))
    assert (paired.low, paired.lower_bound) == pytest.approx((diffs["fqe"].low, diffs["fqe"].lower_bound))
