"""Patient bootstrap: vectorised == naive recomputation, BCa, paired differences, coverage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import (
    OnPolicyValue,
    OPEData,
    PerDecisionWIS,
    ResamplePlan,
    WeightedDoublyRobust,
    WeightedImportanceSampling,
    bootstrap_all,
    bootstrap_interval,
    make_estimator,
    paired_difference,
    percentile_interval,
)
from clinical_mborl.ope.intervals import (
    Replicates,
    bca_interval,
    bootstrap_sums,
    jackknife_sums,
    pair_q_members,
    paired_replicates,
    replicates,
    summarise,
)

from .tabular import ope_data, simulate, tabular_policies, true_value


def grouped_data(seed: int = 0, n_episodes: int = 40, n_steps: int = 4) -> OPEData:
    """Random episodes, several stays per patient, with Q-values."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, n_steps + 1, size=n_episodes)
    mask = np.arange(n_steps)[None, :] < lengths[:, None]
    shape = (n_episodes, n_steps)
    return OPEData.create(
        rewards=rng.normal(size=shape), mask=mask, patient=rng.integers(0, n_episodes // 2, size=n_episodes),
        pb=rng.uniform(0.2, 1.0, shape), pe=rng.uniform(0.0, 1.0, shape), gamma=0.9,
        q_sa=rng.normal(size=shape), v_s=rng.normal(size=shape), soften_epsilon=0.05,
    )


def subset(data: OPEData, episodes: np.ndarray) -> OPEData:
    """A data set made of the given episode rows (repeats allowed), as a naive bootstrap would."""
    assert data.q_sa is not None and data.v_s is not None
    return OPEData(data.rewards[episodes], data.mask[episodes], np.arange(episodes.size), data.pb[episodes],
                   data.pe[episodes], data.gamma, data.return_bounds, data.q_sa[episodes], data.v_s[episodes])


@pytest.mark.parametrize("name", ["wis", "pdwis", "dr", "wdr", "fqe"])
def test_vectorised_bootstrap_equals_recomputing_on_each_resample(name):
    data = grouped_data()
    est = make_estimator(name)
    plan = ResamplePlan(data.n_patients, 30, seed=3, chunk_size=7)
    rep = replicates(est, data, plan)
    for b, counts in enumerate(plan.counts()):
        episodes = np.concatenate([np.flatnonzero(data.patient == p).repeat(c) for p, c in enumerate(counts)])
        assert rep.boot[b] == pytest.approx(est.estimate(subset(data, episodes)), rel=1e-10, abs=1e-12)
    for p in range(data.n_patients):
        assert rep.jack[p] == pytest.approx(est.estimate(subset(data, np.flatnonzero(data.patient != p))),
                                            rel=1e-10, abs=1e-12)


def test_resample_plan_moves_patients_and_is_reproducible():
    plan = ResamplePlan(n_patients=50, n_resamples=100, seed=9, chunk_size=16)
    counts = plan.counts()
    assert counts.shape == (100, 50) and (counts.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(counts, ResamplePlan(50, 100, seed=9, chunk_size=16).counts())
    assert not np.array_equal(counts, ResamplePlan(50, 100, seed=10, chunk_size=16).counts())
    # each patient drawn Binomial(P, 1/P) times: mean 1, variance (1 - 1/P)
    assert counts.mean() == pytest.approx(1.0)
    assert counts.var() == pytest.approx(1 - 1 / 50, rel=0.1)
    with pytest.raises(InputError):
        ResamplePlan(n_patients=1)


def test_paired_difference_with_itself_is_zero_on_every_resample():
    data = grouped_data(1)
    plan = ResamplePlan(data.n_patients, 500, seed=0)
    for est in (WeightedImportanceSampling(), WeightedDoublyRobust()):
        rep = paired_replicates(est, est, data, plan)
        assert rep.value == 0.0 and np.all(rep.boot == 0.0) and np.all(rep.jack == 0.0)
        iv = paired_difference(est, est, data, plan)
        assert (iv.low, iv.high, iv.lower_bound) == (0.0, 0.0, 0.0)


def test_paired_difference_uses_the_same_resamples():
    data = grouped_data(2)
    plan = ResamplePlan(data.n_patients, 200, seed=4)
    est, ref = PerDecisionWIS(), OnPolicyValue()
    diff = paired_replicates(est, ref, data, plan)
    np.testing.assert_allclose(diff.boot, replicates(est, data, plan).boot - replicates(ref, data, plan).boot,
                               atol=1e-12)
    ref_iv, ivs, diffs = bootstrap_all([est], ref, data, plan, method="bca")
    for joint, alone in [(diffs["pdwis"], diff.summarise(method="bca")),
                         (ivs["pdwis"], bootstrap_interval(est, data, plan, method="bca")),
                         (ref_iv, bootstrap_interval(ref, data, plan, method="bca"))]:
        np.testing.assert_allclose([joint.value, joint.low, joint.high, joint.lower_bound],
                                   [alone.value, alone.low, alone.high, alone.lower_bound], atol=1e-12)


def test_bca_matches_scipy_on_a_skewed_mean():
    x = np.random.default_rng(0).exponential(size=(60, 1))
    data = OPEData.create(x, np.ones((60, 1), bool), np.arange(60), pb=np.ones((60, 1)), pe=np.ones((60, 1)),
                          gamma=1.0)
    ours = bootstrap_interval(OnPolicyValue(), data, ResamplePlan(60, 20_000, seed=1), 0.9, "bca")
    ref = sps.bootstrap((x[:, 0],), np.mean, n_resamples=20_000, confidence_level=0.9, method="BCa",
                        random_state=np.random.default_rng(2)).confidence_interval
    width = ref.high - ref.low
    assert abs(ours.low - ref.low) < 0.03 * width and abs(ours.high - ref.high) < 0.03 * width
    perc = bootstrap_interval(OnPolicyValue(), data, ResamplePlan(60, 20_000, seed=1), 0.9, "percentile")
    assert ours.low > perc.low and ours.high > perc.high  # right skew shifts BCa to the right


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_intervals_cover_the_truth_on_a_tabular_mdp(method):
    mdp, pi_b, pi_e = tabular_policies(1.5)
    truth = true_value(mdp, pi_e)
    ests = [WeightedImportanceSampling(), PerDecisionWIS(), WeightedDoublyRobust()]
    hits = {e.name: 0 for e in ests}
    rng, n_rep = np.random.default_rng(11), 150
    for r in range(n_rep):
        data = ope_data(mdp, simulate(mdp, pi_b, 300, rng), pi_b, pi_e, q_scale=0.7)
        _, ivs, _ = bootstrap_all(ests, OnPolicyValue(), data, ResamplePlan(300, 300, seed=r), 0.9, method)
        for name, iv in ivs.items():
            hits[name] += iv.low <= truth <= iv.high
    for name, h in hits.items():
        assert 0.80 <= h / n_rep <= 0.98, (name, h / n_rep)


# ---------------------------------------------------------------- properties
@st.composite
def episode_data(draw: st.DrawFn) -> OPEData:
    n = draw(st.integers(3, 25))
    t = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, t + 1, size=n)
    shape = (n, t)
    return OPEData.create(
        rewards=rng.choice([-1.0, 0.0, 1.0, 2.5], size=shape), mask=np.arange(t)[None, :] < lengths[:, None],
        patient=rng.integers(0, max(2, n // 2), size=n), pb=rng.uniform(0.05, 1.0, shape),
        pe=rng.uniform(0.01, 1.0, shape), gamma=draw(st.sampled_from([0.5, 0.9, 1.0])),
    )


@settings(max_examples=40, deadline=None)
@given(data=episode_data(), method=st.sampled_from(["percentile", "bca"]), level=st.sampled_from([0.8, 0.95]))
def test_intervals_are_ordered_and_wis_stays_in_the_return_range(data, method, level):
    if data.n_patients < 2:
        return
    plan = ResamplePlan(data.n_patients, 200, seed=0)
    g = data.returns()
    wis = bootstrap_interval(WeightedImportanceSampling(), data, plan, level, method)
    assert wis.low <= wis.high
    assert wis.lower_bound <= wis.high
    for x in (wis.value, wis.low, wis.high, wis.lower_bound):
        assert g.min() - 1e-9 <= x <= g.max() + 1e-9
    # per-decision WIS is a sum over steps of convex combinations of that step's rewards
    pd = bootstrap_interval(PerDecisionWIS(), data, plan, level, method)
    lo_env = float(np.sum(data.discounts * data.rewards.min(axis=0)))
    hi_env = float(np.sum(data.discounts * data.rewards.max(axis=0)))
    assert pd.low <= pd.high
    for x in (pd.value, pd.low, pd.high):
        assert lo_env - 1e-9 <= x <= hi_env + 1e-9


@st.composite
def model_data(draw: st.DrawFn) -> OPEData:
    """Episodes with everything every estimator reads: Q-values (optionally refitted members) and
    model rollout returns, drawn on scales up to 30x the return range, and importance ratios up to
    100 per step, so DR, per-decision WIS and the model-based mean can all leave the range."""
    n, t = draw(st.integers(3, 25)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    q_scale, m = draw(st.sampled_from([0.1, 1.0, 30.0])), draw(st.sampled_from([0, 3]))
    lengths = rng.integers(1, t + 1, size=n)
    shape = (n, t)
    q = {"q_sa_members": rng.normal(scale=q_scale, size=(m, *shape)),
         "v_s_members": rng.normal(scale=q_scale, size=(m, *shape))} if m else {
        "q_sa": rng.normal(scale=q_scale, size=shape), "v_s": rng.normal(scale=q_scale, size=shape)}
    return OPEData.create(
        rewards=rng.choice([-1.0, 0.0, 0.5], size=shape), mask=np.arange(t)[None, :] < lengths[:, None],
        patient=rng.integers(0, max(2, n // 2), size=n), pb=rng.uniform(0.01, 1.0, shape),
        pe=rng.uniform(0.0, 1.0, shape), gamma=draw(st.sampled_from([0.9, 1.0])),
        return_bounds=(-5.0, 2.5), model_returns=rng.normal(scale=q_scale, size=n), **q,
    )


@settings(max_examples=60, deadline=None)
@given(data=model_data(), method=st.sampled_from(["percentile", "bca"]), level=st.sampled_from([0.8, 0.95]))
def test_every_estimators_interval_is_ordered_contains_its_estimate_and_stays_in_the_return_range(
        data, method, level):
    if data.n_patients < 2:
        return
    g_min, g_max = data.return_bounds
    names = ["wis", "pdwis", "dr", "wdr", "fqe", "model_based"]
    plan = ResamplePlan(data.n_patients, 200, seed=0)
    ref, ivs, diffs = bootstrap_all([make_estimator(n) for n in names], OnPolicyValue(), data, plan, level, method)
    for name in names:
        for iv, lo, hi in ((ivs[name], g_min, g_max), (diffs[name], g_min - g_max, g_max - g_min)):
            if not np.isfinite(iv.value):  # no importance weight left: undefined, not a number
                continue
            assert lo <= iv.low <= iv.lower_bound <= iv.value <= iv.high <= hi, (name, iv)
        raw = make_estimator(name).value_from_sums(make_estimator(name).patient_stats(data).sum(axis=0))
        assert ivs[name].value_projected == bool(raw < g_min or raw > g_max)
        assert 0 <= ivs[name].n_projected <= plan.n_resamples
    assert ref.low <= ref.lower_bound <= ref.value <= ref.high


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_an_interval_that_misses_its_own_estimate_is_widened_never_narrowed(method):
    # replicates all above the estimate (a bootstrap distribution shifted off it, as a biased
    # member average or a dominant importance weight can produce)
    boot = np.linspace(2.0, 3.0, 401)
    plain = summarise(2.5, boot, np.linspace(2.4, 2.6, 30), 0.9, method)
    assert not plain.extended and plain.low <= plain.lower_bound <= 2.5 <= plain.high
    iv = summarise(1.0, boot, np.linspace(0.9, 1.1, 30), 0.9, method)
    assert iv.extended
    assert iv.low == iv.lower_bound == iv.value == 1.0
    quantiles = (percentile_interval(boot, 0.9) if method == "percentile"
                 else bca_interval(boot, 1.0, np.linspace(0.9, 1.1, 30), 0.9))
    assert iv.high == quantiles[1] >= 2.0  # the upper end kept its quantile


@settings(max_examples=40, deadline=None)
@given(data=model_data(), method=st.sampled_from(["percentile", "bca"]))
def test_projection_costs_no_coverage_the_interval_is_the_unprojected_one_cut_to_the_range(data, method):
    if data.n_patients < 2:
        return
    plan = ResamplePlan(data.n_patients, 200, seed=0)
    for name in ("pdwis", "dr", "wdr", "model_based"):
        est = make_estimator(name)
        stats = est.patient_stats(data)
        boot = pair_q_members(bootstrap_sums(plan, stats), data, plan, [(est, 0, stats.shape[1])])
        parts = (stats.sum(axis=0), boot, jackknife_sums(stats))
        cut = Replicates.of(est, *parts, data.return_bounds).summarise(0.9, method)
        free = Replicates.of(est, *parts, (-np.inf, np.inf)).summarise(0.9, method)
        if cut.extended or free.extended or not np.isfinite(free.value):
            continue
        for a, b in ((cut.low, free.low), (cut.high, free.high), (cut.lower_bound, free.lower_bound)):
            assert a == pytest.approx(float(np.clip(b, *data.return_bounds)), rel=1e-12, abs=1e-12), name


def test_projection_is_counted_and_never_moves_an_estimate_away_from_the_truth():
    # DR with a Q-model 30x off the return scale and ratios up to 100: its raw estimate leaves
    # [G_min, G_max]; the projected one is as close or closer to any value inside the range
    rng = np.random.default_rng(4)
    shape = (60, 5)
    data = OPEData.create(rng.choice([-1.0, 0.0, 0.5], size=shape), np.ones(shape, bool), np.arange(60),
                          pb=rng.uniform(0.01, 1.0, shape), pe=rng.uniform(0.0, 1.0, shape), gamma=1.0,
                          return_bounds=(-5.0, 2.5), q_sa=rng.normal(scale=30.0, size=shape),
                          v_s=rng.normal(scale=30.0, size=shape))
    dr = make_estimator("dr")
    raw = float(dr.value_from_sums(dr.patient_stats(data).sum(axis=0)))
    iv = bootstrap_interval(dr, data, ResamplePlan(60, 500, seed=0))
    assert not -5.0 <= raw <= 2.5 and iv.value_projected and iv.value in (-5.0, 2.5)
    assert iv.n_projected > 0
    for truth in np.linspace(-5.0, 2.5, 16):
        assert abs(iv.value - truth) <= abs(raw - truth)


@settings(max_examples=40, deadline=None)
@given(data=episode_data(), level=st.floats(0.5, 0.99))
def test_percentile_interval_contains_the_bootstrap_median(data, level):
    if data.n_patients < 2:
        return
    rep = replicates(PerDecisionWIS(), data, ResamplePlan(data.n_patients, 101, seed=1))
    low, high, lower = percentile_interval(rep.boot, level)
    median = float(np.median(rep.boot))
    assert low <= median <= high
    assert low <= lower <= median


@settings(max_examples=30, deadline=None)
@given(data=episode_data())
def test_on_policy_wis_equals_the_mean_observed_return(data):
    on_policy = OPEData.create(data.rewards, data.mask, data.patient, pb=data.pb, pe=data.pb, gamma=data.gamma)
    assert WeightedImportanceSampling().estimate(on_policy) == pytest.approx(float(data.returns().mean()))
    assert PerDecisionWIS().estimate(on_policy) == pytest.approx(float(data.returns().mean()))


def test_bad_levels_and_methods_are_refused():
    with pytest.raises(InputError):
        percentile_interval(np.arange(10.0), 1.0)
    with pytest.raises(InputError):
        bootstrap_interval(OnPolicyValue(), grouped_data(), ResamplePlan(20, 10), method="normal")  # type: ignore[arg-type]
