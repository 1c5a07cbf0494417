"""Fitted Q evaluation: tabular exactness, the estimators it feeds, cross-fitting by patient."""

from __future__ import annotations

import numpy as np
import pytest

import clinical_mborl.ope.fqe as fqe_module
from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import DoublyRobust, FittedQEvaluation, OPEData, WeightedDoublyRobust
from clinical_mborl.ope.fqe import FQEConfig, FQEData, cross_fit_q, fit_fqe

from .tabular import (
    assert_reaches_empirical_q,
    empirical_q,
    fqe_data,
    tabular_features,
    tabular_problem,
    true_value,
)

TABULAR = FQEConfig(hidden_sizes=(), epochs_per_iteration=60, batch_size=100_000, learning_rate=0.1, n_members=1)


@pytest.fixture(scope="module")
def tabular_fit():
    mdp, pi_b, pi_e, ep = tabular_problem(2000, sharp=3.0)
    model = fit_fqe(fqe_data(mdp, ep, pi_e), mdp.n_actions, mdp.gamma, mdp.horizon, TABULAR)
    feats = tabular_features(mdp)
    q = model.q_values(feats.reshape(-1, feats.shape[-1])).reshape(mdp.horizon, mdp.n_states, mdp.n_actions)
    return mdp, pi_b, pi_e, ep, q


def test_tabular_fqe_reaches_the_empirical_mdp_fixed_point(tabular_fit):
    mdp, _, pi_e, ep, q = tabular_fit
    assert_reaches_empirical_q(q, mdp, ep, pi_e)


def test_fqe_values_feed_fqe_dr_and_wdr_to_the_truth(tabular_fit):
    mdp, pi_b, pi_e, ep, q = tabular_fit
    t = np.broadcast_to(np.arange(mdp.horizon), ep.states.shape)
    data = OPEData.create(
        ep.rewards, ep.mask, np.arange(ep.mask.shape[0]), pb=pi_b[ep.states, ep.actions],
        pe=pi_e[ep.states, ep.actions], gamma=mdp.gamma, q_sa=q[t, ep.states, ep.actions],
        v_s=(pi_e[ep.states] * q[t, ep.states]).sum(axis=2),
    )
    truth, clinician = true_value(mdp, pi_e), true_value(mdp, pi_b)
    q_emp, _ = empirical_q(mdp, ep, pi_e)
    v0_emp = (pi_e[ep.states[:, 0]] * q_emp[0, ep.states[:, 0]]).sum(axis=1).mean()
    assert FittedQEvaluation().estimate(data) == pytest.approx(v0_emp, abs=0.01)
    for est in (FittedQEvaluation(), DoublyRobust(), WeightedDoublyRobust()):
        assert abs(est.estimate(data) - truth) < 0.1 < abs(est.estimate(data) - clinician)


def _toy_fqe_data(n_patients: int, rows_per_patient: int = 3, offset: int = 0) -> FQEData:
    n = n_patients * rows_per_patient
    rng = np.random.default_rng(offset)
    return FQEData(features=rng.normal(size=(n, 3)).astype(np.float32), actions=rng.integers(0, 2, n),
                   rewards=rng.normal(size=n), end=np.ones(n, bool), next_features=np.zeros((n, 3), np.float32),
                   next_policy=np.full((n, 2), 0.5),
                   patient=np.repeat(np.arange(n_patients) + offset, rows_per_patient))


def test_cross_fitting_never_trains_on_the_patient_it_predicts(monkeypatch):
    calls: list[set[int]] = []
    real_fit = fqe_module.fit_fqe

    def spy(data, *args, **kwargs):
        calls.append(set(np.unique(data.patient).tolist()))
        return real_fit(data, *args, **kwargs)

    monkeypatch.setattr(fqe_module, "fit_fqe", spy)
    cfg = FQEConfig(hidden_sizes=(), epochs_per_iteration=1, n_folds=3, n_members=2)
    fit = _toy_fqe_data(12)
    eval_patient = np.array([0, 0, 5, 7, 11])
    q = cross_fit_q(fit, np.zeros((5, 3), np.float32), eval_patient, 2, 0.9, 1, cfg)
    assert q.shape == (2, 5, 2) and len(calls) == 3
    for p in eval_patient:
        used = [seen for seen in calls if p not in seen]
        assert len(used) == 1  # exactly one model excludes p: the one that predicts it
    # disjoint fit and evaluation patients: one model on everything
    calls.clear()
    cross_fit_q(fit, np.zeros((2, 3), np.float32), np.array([100, 101]), 2, 0.9, 1, cfg)
    assert calls == [set(range(12))]


def test_fit_refuses_bad_inputs():
    data = _toy_fqe_data(2)
    with pytest.raises(InputError, match="next_policy"):
        fit_fqe(data, n_actions=3, gamma=0.9, horizon=1)
    with pytest.raises(InputError, match="at least one"):
        fit_fqe(data.rows(np.zeros(len(data.actions), bool)), n_actions=2, gamma=0.9, horizon=1)


def _self_loop_data(n: int = 64) -> FQEData:
    """A state that never ends and pays 0.5 per step: the unclamped Q grows with every iteration."""
    x = np.ones((n, 1), np.float32)
    return FQEData(features=x, actions=np.zeros(n, np.int64), rewards=np.full(n, 0.5), end=np.zeros(n, bool),
                   next_features=x, next_policy=np.ones((n, 1)), patient=np.arange(n))


LINEAR = FQEConfig(hidden_sizes=(), epochs_per_iteration=150, batch_size=64, learning_rate=0.05, n_members=1,
                   n_iterations=8, clip_to_value_bounds=True)


def test_value_bounds_clamp_the_bootstrapped_target_and_the_returned_q():
    import torch

    data = _self_loop_data()
    free = fit_fqe(data, 1, 0.99, 8, LINEAR).q_values(data.features[:1])[0, 0]
    bounded = fit_fqe(data, 1, 0.99, 8, LINEAR, value_bounds=(-1.0, 1.0))
    assert free > 3.0  # 0.5 * (1 + .99 + ... ) over 8 iterations ~ 3.9
    assert bounded.q_values(data.features[:1])[0, 0] == pytest.approx(1.0)
    with torch.no_grad():  # the regression itself saw targets 0.5 + 0.99 * clamp(V) <= 1.49
        raw = float(bounded.net(torch.ones(1, 1))[0, 0, 0]) * bounded.scale
    assert raw == pytest.approx(0.5 + 0.99 * 1.0, abs=0.03)
    off = LINEAR.model_copy(update={"clip_to_value_bounds": False})
    assert fit_fqe(data, 1, 0.99, 8, off, value_bounds=(-1.0, 1.0)).q_values(data.features[:1])[0, 0] > 3.0
    with pytest.raises(InputError, match="value_bounds"):
        fit_fqe(data, 1, 0.99, 8, LINEAR, value_bounds=(1.0, -1.0))


def test_cosine_schedule_anneals_each_iteration_and_restarts_at_every_target_refresh(monkeypatch):
    """Each iteration's steps run from the full step size down toward 0; the next iteration restarts."""
    seen: list[float] = []
    original = fqe_module.FQESystem.training_step

    def recording(self, batch, batch_idx):
        seen.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return original(self, batch, batch_idx)

    monkeypatch.setattr(fqe_module.FQESystem, "training_step", recording)
    data = _toy_fqe_data(40)  # 120 rows, batches of 30: 4 steps per epoch, 8 per iteration
    config = FQEConfig(hidden_sizes=(4,), epochs_per_iteration=2, batch_size=30, n_iterations=3,
                       learning_rate=0.01, n_members=1, lr_schedule="cosine")
    fit_fqe(data, 2, 0.9, 3, config)
    expected = [0.01 * fqe_module.cosine_factor(s, 8) for s in range(24)]
    assert seen == pytest.approx(expected)
    assert seen[0] == seen[8] == seen[16] == pytest.approx(0.01) and max(seen[7], seen[15], seen[23]) < 0.0005
    seen.clear()
    fit_fqe(data, 2, 0.9, 3, config.model_copy(update={"lr_schedule": "constant"}))
    assert seen == pytest.approx([0.01] * 24)
    with pytest.raises(ValueError, match="backward schedule"):  # it has no iterations to anneal
        FQEConfig(schedule="backward", lr_schedule="cosine")


def test_tabular_fqe_with_the_cosine_schedule_reaches_the_empirical_fixed_point():
    mdp, _, pi_e, ep = tabular_problem(2000, sharp=3.0)
    model = fit_fqe(fqe_data(mdp, ep, pi_e), mdp.n_actions, mdp.gamma, mdp.horizon,
                    TABULAR.model_copy(update={"lr_schedule": "cosine"}))
    feats = tabular_features(mdp)
    q = model.q_values(feats.reshape(-1, feats.shape[-1])).reshape(mdp.horizon, mdp.n_states, mdp.n_actions)
    assert_reaches_empirical_q(q, mdp, ep, pi_e)


def test_steps_per_iteration_fixes_the_budget_whatever_the_rows_and_refreshes_the_target_on_time(monkeypatch):
    """An iteration is `steps_per_iteration` Adam steps, across epoch boundaries; the target is Q_0 = 0
    during the first and is refreshed after every `steps_per_iteration` steps."""
    seen: list[tuple[int, bool, float]] = []
    original = fqe_module.FQESystem.training_step

    def recording(self, batch, batch_idx):
        seen.append((self.global_step, self.in_first_iteration(), float(self.target.weights[-1].sum())))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(fqe_module.FQESystem, "training_step", recording)
    config = FQEConfig(hidden_sizes=(4,), steps_per_iteration=5, batch_size=30, n_iterations=3, n_members=1)
    for patients in (40, 80):  # 4 and 8 batches per epoch: the same 15 steps
        seen.clear()
        fit_fqe(_toy_fqe_data(patients), 2, 0.9, 3, config)
        assert [s for s, _, _ in seen] == list(range(15))
        assert [first for _, first, _ in seen] == [True] * 5 + [False] * 10
        targets = [t for _, _, t in seen]
        changes = [i for i in range(1, 15) if targets[i] != targets[i - 1]]
        assert changes == [5, 10]


def test_a_step_budget_equal_to_the_epoch_budget_gives_the_same_fit():
    data = _toy_fqe_data(40)  # 120 rows, batches of 30: 4 steps per epoch
    for schedule in ("cosine", "constant"):
        by_epochs = FQEConfig(hidden_sizes=(4,), epochs_per_iteration=2, batch_size=30, n_iterations=3,
                              n_members=2, lr_schedule=schedule)
        by_steps = by_epochs.model_copy(update={"steps_per_iteration": 8, "epochs_per_iteration": 99})
        a, b = (fit_fqe(data, 2, 0.9, 3, c).member_q_values(data.features) for c in (by_epochs, by_steps))
        np.testing.assert_array_equal(a, b)
    c = fit_fqe(data, 2, 0.9, 3, by_steps.model_copy(update={"steps_per_iteration": 4})).member_q_values(data.features)
    assert not np.allclose(a, c)
