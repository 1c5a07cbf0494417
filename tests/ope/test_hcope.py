"""High-confidence lower bound (Thomas et al., AAAI 2015)."""

from __future__ import annotations

import numpy as np
import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import OPEData, empirical_bernstein_lower, high_confidence_lower_bound

from .tabular import ope_data, simulate, tabular_policies, true_value


def test_bound_equals_the_pairwise_form_of_theorem_1():
    # Theorem 1 with equal thresholds c: mean(Y) - 7 c ln(2/d) / (3(n-1))
    #   - (c/n) sqrt(ln(2/d)/(n-1) * sum_{i,j} (Y_i/c - Y_j/c)^2)
    rng = np.random.default_rng(0)
    x, c, delta = rng.exponential(size=300), 2.0, 0.1
    y, n, log_term = np.minimum(x, c), x.size, np.log(2 / delta)
    pairwise = ((y[:, None] / c - y[None, :] / c) ** 2).sum()
    expected = y.mean() - 7 * c * log_term / (3 * (n - 1)) - (c / n) * np.sqrt(log_term / (n - 1) * pairwise)
    assert empirical_bernstein_lower(x, c, delta) == pytest.approx(expected, rel=1e-12)


def test_bound_tightens_towards_the_mean_with_more_data():
    rng = np.random.default_rng(1)
    gaps = [0.5 - empirical_bernstein_lower(rng.uniform(size=n), 1.0, 0.05) for n in (100, 1000, 100_000)]
    assert gaps[0] > gaps[1] > gaps[2] > 0 and gaps[2] < 0.01


def test_bound_holds_off_policy_on_a_tabular_mdp():
    mdp, pi_b, pi_e = tabular_policies(1.5)
    truth = true_value(mdp, pi_e)
    rng = np.random.default_rng(3)
    bounds = []
    for r in range(60):
        data = ope_data(mdp, simulate(mdp, pi_b, 1000, rng), pi_b, pi_e, with_q=False)
        bounds.append(high_confidence_lower_bound(data, delta=0.05, seed=r).lower_bound)
    bounds = np.array(bounds)
    assert np.mean(bounds <= truth) >= 0.95
    g_min, _ = data.return_bounds
    assert np.all(bounds >= g_min)
    assert np.median(bounds) > g_min  # informative, not the trivial bound


def test_on_policy_bound_is_below_the_mean_and_reports_its_split():
    rng = np.random.default_rng(4)
    r = rng.choice([-1.0, 1.0], p=[0.3, 0.7], size=(2000, 1))
    data = OPEData.create(r, np.ones((2000, 1), bool), np.arange(2000), pb=np.ones((2000, 1)),
                          pe=np.ones((2000, 1)), gamma=1.0, return_bounds=(-1.0, 1.0))
    b = high_confidence_lower_bound(data, delta=0.05, selection_fraction=0.05)
    assert 0.25 < b.lower_bound < r.mean()
    assert b.n_patients_selection == 100 and b.n_patients_bound == 1900
    assert b.truncated_share == 0.0  # on-policy X <= 1: the chosen c never truncates


def test_refuses_too_few_patients_and_bad_settings():
    with pytest.raises(InputError):
        empirical_bernstein_lower(np.ones(1), 1.0, 0.05)
    with pytest.raises(InputError):
        empirical_bernstein_lower(np.ones(5), 0.0, 0.05)
    data = OPEData.create(np.zeros((3, 1)), np.ones((3, 1), bool), np.arange(3), pb=np.ones((3, 1)),
                          pe=np.ones((3, 1)), gamma=1.0)
    with pytest.raises(InputError):
        high_confidence_lower_bound(data)
    with pytest.raises(InputError):
        high_confidence_lower_bound(data, selection_fraction=1.5)


def test_a_bound_above_the_largest_return_is_reported_not_valid():
    # the logged probabilities are 20x too small (an over-confident clinician model): every weight
    # is 20 instead of 1, and the inequality's "bound" lands far above the best possible return
    rng = np.random.default_rng(5)
    r = rng.choice([-1.0, 1.0], p=[0.3, 0.7], size=(2000, 1))
    ok = OPEData.create(r, np.ones((2000, 1), bool), np.arange(2000), pb=np.ones((2000, 1)),
                        pe=np.ones((2000, 1)), gamma=1.0, return_bounds=(-1.0, 1.0))
    bad = OPEData.create(r, np.ones((2000, 1), bool), np.arange(2000), pb=np.full((2000, 1), 0.05),
                         pe=np.ones((2000, 1)), gamma=1.0, return_bounds=(-1.0, 1.0))
    good, broken = high_confidence_lower_bound(ok), high_confidence_lower_bound(bad)
    assert good.valid and good.mean_weight == pytest.approx(1.0)
    assert not broken.valid and broken.lower_bound == -1.0 and broken.mean_weight == pytest.approx(20.0)


def test_weights_averaging_far_above_one_make_the_bound_not_valid_even_below_the_maximum():
    # 10 of 2,000 patients carry a weight of 10,000 (their logged probability 1e-4): the mean
    # weight is ~51, which correct weights (mean 1) reach with probability <= 1/51 < delta
    rng = np.random.default_rng(6)
    r = rng.choice([-1.0, 1.0], p=[0.3, 0.7], size=(2000, 1))
    pb = np.ones((2000, 1))
    pb[:10] = 1e-4
    data = OPEData.create(r, np.ones((2000, 1), bool), np.arange(2000), pb=pb, pe=np.ones((2000, 1)),
                          gamma=1.0, return_bounds=(-1.0, 1.0))
    b = high_confidence_lower_bound(data, delta=0.05)
    assert b.mean_weight == pytest.approx(1.0 + 10 * (1e4 - 1) / 2000)
    assert not b.valid and b.lower_bound == -1.0
    assert high_confidence_lower_bound(data, delta=0.01).valid  # 51 < 1 / 0.01: plausible at that level
