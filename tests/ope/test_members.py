"""Rubin's-rules intervals over bootstrapped FQE's Q-members (`ope.members`)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.estimators import FittedQEvaluation, OnPolicyValue
from clinical_mborl.ope.members import member_intervals, rubin_interval


def test_covers_at_nominal_when_members_are_bootstrap_draws_around_a_sampling_error():
    """The setting Rubin's rules assume: the data set's estimate is off by N(0, s^2), and each of
    M = 5 refits scatters around it by another N(0, s^2). The pivot is then t with M - 1 degrees of
    freedom, so the interval covers ~95%; +-1.96 of the five members' spread would cover ~88%."""
    rng = np.random.default_rng(0)
    truth, sd, m, reps = 0.3, 0.05, 5, 4000
    covered, covered_z = 0, 0
    for _ in range(reps):
        estimate = truth + rng.normal(0, sd)
        members = estimate + rng.normal(0, sd, size=m)
        iv = rubin_interval(members, np.zeros(m), n_patients=10**9)
        covered += iv.low <= truth <= iv.high
        half_z = 1.96 * np.sqrt((1 + 1 / m) * members.var(ddof=1))
        covered_z += abs(members.mean() - truth) <= half_z
    assert 0.94 <= covered / reps <= 0.96
    assert covered_z / reps < 0.90


def test_without_between_member_spread_it_is_the_normal_interval_of_the_within_variance():
    iv = rubin_interval(np.full(5, 0.2), np.full(5, 0.01**2), n_patients=100_000)
    assert iv.dof > 10_000
    assert iv.high - iv.value == pytest.approx(1.96 * 0.01, rel=1e-3)
    assert iv.value - iv.lower_bound == pytest.approx(1.645 * 0.01, rel=1e-3)


def test_refuses_one_member():
    with pytest.raises(InputError, match="2 member"):
        rubin_interval(np.array([0.1]), np.array([0.01]), n_patients=10)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.floats(-30, 30), min_size=2, max_size=8), var=st.floats(0, 4),
       level=st.sampled_from([0.8, 0.95]))
def test_ordered_contains_its_estimate_and_stays_in_the_return_range(values, var, level):
    v = np.array(values)
    iv = rubin_interval(v, np.full(v.size, var), n_patients=50, level=level, bounds=(-1.0, 1.0))
    assert -1.0 <= iv.low <= iv.lower_bound <= iv.value <= iv.high <= 1.0


def _member_data(rng, n=60, t=3, m=4):
    shape = (n, t)
    return OPEData.create(
        rewards=rng.choice([-1.0, 0.0, 1.0], size=shape), mask=np.ones(shape, bool), patient=np.arange(n),
        pb=np.full(shape, 0.5), pe=np.full(shape, 0.5), gamma=1.0, return_bounds=(-3.0, 3.0),
        q_sa_members=rng.normal(size=(m, *shape)), v_s_members=rng.normal(0.5, 0.3, size=(m, *shape)))


def test_member_intervals_combine_each_members_fqe_and_its_sampling_variance():
    rng = np.random.default_rng(1)
    data = _member_data(rng)
    value, diff = member_intervals(FittedQEvaluation(), data, reference=OnPolicyValue())
    v0 = data.v_s_members[:, :, 0]  # [M, P]: each member's value of each patient's first state
    theta = v0.mean(axis=1)
    within = (v0.var(axis=1, ddof=1) / v0.shape[1]).mean()  # jackknife = s^2 / P for a mean
    assert value.value == pytest.approx(theta.mean())
    assert value.within == pytest.approx(within)
    assert value.between == pytest.approx(theta.var(ddof=1))
    returns = data.rewards.sum(axis=1)
    assert diff is not None
    assert diff.value == pytest.approx(theta.mean() - returns.mean())
    assert diff.between == pytest.approx(value.between)
    paired = ((v0 - returns).var(axis=1, ddof=1) / v0.shape[1]).mean()
    assert diff.within == pytest.approx(paired)


def test_member_intervals_need_members():
    rng = np.random.default_rng(2)
    data = _member_data(rng)
    single = OPEData.create(rewards=data.rewards, mask=data.mask, patient=np.arange(60), pb=np.full((60, 3), 0.5),
                            pe=np.full((60, 3), 0.5), gamma=1.0, q_sa=data.q_sa, v_s=data.v_s)
    with pytest.raises(InputError, match="Q-members"):
        member_intervals(FittedQEvaluation(), single)


def test_evaluate_arrays_uses_rubins_rules_for_fqe_only_when_asked():
    from clinical_mborl.ope.evaluate import evaluate_arrays
    from clinical_mborl.ope.results import OPEConfig

    rng = np.random.default_rng(3)
    data = _member_data(rng, m=5)
    config = OPEConfig(estimators=("wis", "fqe"), n_resamples=300, soften_epsilon=0.0)
    boot = evaluate_arrays(data, config)
    rubin = evaluate_arrays(data, config.model_copy(update={"fqe_interval": "rubin"}))
    value, diff = member_intervals(FittedQEvaluation(), data, reference=OnPolicyValue())
    assert diff is not None
    fqe = {r: next(e for e in rep.estimates if e.estimator == "fqe") for r, rep in (("b", boot), ("r", rubin))}
    fqe_diff = {r: next(d for d in rep.differences if d.estimator == "fqe") for r, rep in (("b", boot), ("r", rubin))}
    assert fqe["b"].method == "bca" and fqe["r"].method == "rubin"
    assert fqe["r"].value == pytest.approx(fqe["b"].value)  # the same bagged estimate
    assert (fqe["r"].ci_low, fqe["r"].ci_high, fqe["r"].lower_bound) == pytest.approx(
        (value.low, value.high, value.lower_bound))
    assert (fqe_diff["r"].value, fqe_diff["r"].lower_bound) == pytest.approx((diff.value, diff.lower_bound))
    assert fqe["r"].diagnostics["rubin_dof"] == pytest.approx(value.dof)
    assert "Rubin" in str(fqe["r"].diagnostics["interval_scope"])
    assert "rubin_dof" not in fqe["b"].diagnostics
    # every other estimator is untouched
    assert rubin.estimates[0] == boot.estimates[0] and rubin.differences[0] == boot.differences[0]


def test_subgroup_differences_use_rubins_rules_within_each_group():
    from clinical_mborl.ope.results import OPEConfig
    from clinical_mborl.ope.subgroups import subgroup_differences

    rng = np.random.default_rng(4)
    data = _member_data(rng, n=80, m=5)
    labels = {"sex": np.where(np.arange(80) % 4 == 0, "female", "male"), "all": np.full(80, "everyone")}
    config = OPEConfig(n_resamples=200, soften_epsilon=0.0, fqe_interval="rubin")
    rows = {(r.attribute, r.level): r for r in subgroup_differences(data, labels, ("fqe",), config)}
    female = np.arange(80) % 4 == 0
    _, expected = member_intervals(FittedQEvaluation(), data, reference=OnPolicyValue(), episodes=female)
    _, overall = member_intervals(FittedQEvaluation(), data, reference=OnPolicyValue())
    assert expected is not None and overall is not None
    got = rows[("sex", "female")]
    assert (got.difference, got.ci_low, got.ci_high, got.lower_bound) == pytest.approx(
        (expected.value, expected.low, expected.high, expected.lower_bound))
    assert got.n_patients == 20
    everyone = rows[("all", "everyone")]
    assert (everyone.difference, everyone.lower_bound) == pytest.approx((overall.value, overall.lower_bound))
    # a quarter of the patients: the within-member variance is about four times the overall one
    assert 2.5 < expected.within / overall.within < 6.0


def test_subgroup_rubin_fqe_draws_no_fqe_bootstrap_and_leaves_other_estimators_alone(monkeypatch):
    from clinical_mborl.ope import subgroups
    from clinical_mborl.ope.results import OPEConfig

    rng = np.random.default_rng(5)
    data = _member_data(rng, n=60, m=4)
    labels = {"sex": np.where(np.arange(60) % 3 == 0, "female", "male")}
    config = OPEConfig(n_resamples=150, soften_epsilon=0.0)
    boot = {(r.level, r.estimator): r for r in subgroups.subgroup_differences(data, labels, ("wis", "fqe"), config)}

    def no_member_bootstrap(*args, **kwargs):
        raise AssertionError("FQE's member bootstrap was computed although Rubin's rules replace it")

    monkeypatch.setattr(subgroups, "member_bootstrap_sums", no_member_bootstrap)
    rows = subgroups.subgroup_differences(data, labels, ("wis", "fqe"), config.model_copy(update={"fqe_interval": "rubin"}))
    assert [(r.level, r.estimator) for r in rows] == [("female", "wis"), ("female", "fqe"), ("male", "wis"), ("male", "fqe")]
    rubin = {(r.level, r.estimator): r for r in rows}
    for level in ("female", "male"):
        assert rubin[(level, "wis")] == boot[(level, "wis")]  # the same resamples, untouched
        assert rubin[(level, "fqe")].difference == pytest.approx(boot[(level, "fqe")].difference)
        assert rubin[(level, "fqe")].ci_low != pytest.approx(boot[(level, "fqe")].ci_low)


def test_degrees_of_freedom_survive_a_share_whose_square_underflows():
    from clinical_mborl.ope.members import barnard_rubin_dof

    # hypothesis found members agreeing to ~1e-160: (share ** 2) underflowed and divided by zero
    tiny = barnard_rubin_dof(1e-4, 1e-320, 5, 80)
    assert np.isfinite(tiny) and tiny == pytest.approx(barnard_rubin_dof(1e-4, 0.0, 5, 80))
    assert barnard_rubin_dof(0.0, 1.0, 5, 80) == pytest.approx(4.0)  # all information missing: M - 1
