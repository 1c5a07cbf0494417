"""Marginal-sensitivity bounds of FQE: exact on a one-step problem, ordered, refusing bad input."""

from __future__ import annotations

import numpy as np
import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.fqe import FQEConfig, FQEData, fit_fqe
from clinical_mborl.ope.sensitivity import fit_sensitivity_bounds, fit_sensitivity_fqe

BANDIT = FQEConfig(hidden_sizes=(), epochs_per_iteration=300, batch_size=1000, learning_rate=0.03,
                   n_members=1, n_iterations=1)


def _bandit(p_survive: float = 0.6, n: int = 1000) -> FQEData:
    """One decision, one action given with pi_b = 0.5; survival (+1) in a share p_survive, else -1."""
    k = int(round(p_survive * n))
    x = np.ones((n, 1), np.float32)
    return FQEData(features=x, actions=np.zeros(n, np.int64), rewards=np.r_[np.ones(k), -np.ones(n - k)],
                   end=np.ones(n, bool), next_features=x, next_policy=np.ones((n, 1)), patient=np.arange(n),
                   behavior_prob=np.full(n, 0.5))


def test_one_step_bounds_match_the_closed_form():
    # p = 0.5, Lambda = 2: weights in [0.75, 1.5] averaging 1. The lower bound puts 1.5 on the worst
    # third of the outcomes (all deaths here): 1.5 * (1/3) * -1 + 0.75 * (0.4 - 1/3) * -1 + 0.75 * 0.6
    # = -0.1; the upper bound puts 1.5 on the best third: 0.5 + 0.75 * (0.6 - 1/3) - 0.75 * 0.4 = 0.4.
    data = _bandit()
    x = data.features[:1]
    lower = fit_sensitivity_fqe(data, 1, 0.99, 1, 2.0, "lower", BANDIT).q_values(x)[0, 0]
    upper = fit_sensitivity_fqe(data, 1, 0.99, 1, 2.0, "upper", BANDIT).q_values(x)[0, 0]
    plain = fit_fqe(data, 1, 0.99, 1, BANDIT).q_values(x)[0, 0]
    assert lower == pytest.approx(-0.1, abs=0.03)
    assert upper == pytest.approx(0.4, abs=0.03)
    assert plain == pytest.approx(0.2, abs=0.02)
    # Lambda = 1 (no confounding) is plain FQE
    for side in ("lower", "upper"):
        assert fit_sensitivity_fqe(data, 1, 0.99, 1, 1.0, side, BANDIT).q_values(x)[0, 0] == pytest.approx(0.2, abs=0.02)


def _sharp_bound(y: np.ndarray, p: float, lam: float, side: str) -> float:
    """min (or max) of mean(w y) over weights in [a_lo, a_hi] averaging 1: a_hi on the worst (best)
    tau share of the outcomes, a_lo on the rest (the boundary outcome split)."""
    a_lo, a_hi = p + (1 - p) / lam, p + (1 - p) * lam
    ys = np.sort(y) if side == "lower" else -np.sort(-y)
    cut = (1 - a_lo) / (a_hi - a_lo) * len(ys)
    w = np.full(len(ys), a_lo)
    w[: int(cut)] = a_hi
    if int(cut) < len(ys):
        w[int(cut)] = a_hi * (cut - int(cut)) + a_lo * (1 - cut + int(cut))
    return float((w * ys).mean())


def test_bounds_trained_together_in_one_hidden_network_each_match_their_closed_form():
    # two states with different pi_b (0.5, 0.8) and survival (0.6, 0.3); four bounds share the
    # hidden layer and the batches, and each must still land on its own sharp value at each state
    n = 1000
    x = np.repeat(np.eye(2, dtype=np.float32), n, axis=0)
    y = np.r_[np.where(np.arange(n) < 600, 1.0, -1.0), np.where(np.arange(n) < 300, 1.0, -1.0)]
    p = np.r_[np.full(n, 0.5), np.full(n, 0.8)]
    data = FQEData(features=x, actions=np.zeros(2 * n, np.int64), rewards=y, end=np.ones(2 * n, bool),
                   next_features=x, next_policy=np.ones((2 * n, 1)), patient=np.arange(2 * n), behavior_prob=p)
    cfg = BANDIT.model_copy(update={"hidden_sizes": (16,), "batch_size": 2000, "epochs_per_iteration": 600})
    bounds = [(2.0, "lower"), (2.0, "upper"), (1.5, "lower"), (1.5, "upper")]
    models = fit_sensitivity_bounds(data, 1, 0.99, 1, bounds, cfg)
    assert len(models) == len(bounds)
    for (lam, side), model in zip(bounds, models, strict=True):
        got = model.q_values(np.eye(2, dtype=np.float32))[:, 0]
        want = [_sharp_bound(y[:n], 0.5, lam, side), _sharp_bound(y[n:], 0.8, lam, side)]
        assert got == pytest.approx(want, abs=0.03), (lam, side)
    assert _sharp_bound(y[:n], 0.5, 2.0, "lower") == pytest.approx(-0.1)  # the closed form above


def test_an_action_the_clinicians_always_give_is_not_widened():
    data = _bandit()
    sure = FQEData(**{**data.__dict__, "behavior_prob": np.ones(len(data.actions))})
    x = data.features[:1]
    for side in ("lower", "upper"):
        assert fit_sensitivity_fqe(sure, 1, 0.99, 1, 3.0, side, BANDIT).q_values(x)[0, 0] == pytest.approx(0.2, abs=0.02)


def test_bounds_widen_with_lambda_and_carry_through_steps():
    # two steps: a 0.5 reward-free first step then the bandit; the bound is discounted back once
    rng = np.random.default_rng(0)
    n = 1000
    surv = rng.random(n) < 0.6
    first, second = np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32)
    first[:, 0], second[:, 1] = 1.0, 1.0
    data = FQEData(features=np.r_[first, second], actions=np.zeros(2 * n, np.int64),
                   rewards=np.r_[np.zeros(n), np.where(surv, 1.0, -1.0)], end=np.r_[np.zeros(n, bool), np.ones(n, bool)],
                   next_features=np.r_[second, second], next_policy=np.ones((2 * n, 1)),
                   patient=np.r_[np.arange(n), np.arange(n)], behavior_prob=np.full(2 * n, 0.5))
    cfg = BANDIT.model_copy(update={"n_iterations": 3, "batch_size": 2000})
    v = {lam: fit_sensitivity_fqe(data, 1, 0.9, 2, lam, "lower", cfg).q_values(first[:1])[0, 0] for lam in (1.0, 1.5, 3.0)}
    assert v[1.0] > v[1.5] > v[3.0]
    # at the first step the outcome is deterministic given the state (y = 0.9 * V(s')), so the
    # first backup adds no width: V_lo(s0) = 0.9 * V_lo(s1)
    mean = 2 * surv.mean() - 1
    assert v[1.0] == pytest.approx(0.9 * mean, abs=0.03)


def test_bad_inputs_are_refused():
    data = _bandit(n=20)
    with pytest.raises(InputError, match="Lambda"):
        fit_sensitivity_fqe(data, 1, 0.99, 1, 0.5, "lower", BANDIT)
    with pytest.raises(InputError, match="side"):
        fit_sensitivity_fqe(data, 1, 0.99, 1, 2.0, "both", BANDIT)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="behavior_prob"):
        fit_sensitivity_fqe(FQEData(**{**data.__dict__, "behavior_prob": None}), 1, 0.99, 1, 2.0, "lower", BANDIT)
    with pytest.raises(InputError, match="behavior_prob"):
        fit_sensitivity_fqe(FQEData(**{**data.__dict__, "behavior_prob": np.zeros(20)}), 1, 0.99, 1, 2.0, "lower", BANDIT)
    with pytest.raises(InputError, match="at least one"):
        fit_sensitivity_bounds(data, 1, 0.99, 1, [], BANDIT)
