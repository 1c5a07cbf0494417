"""Subgroup OPE: restriction == recomputation on the in-group stays, same resamples as overall."""

from __future__ import annotations

import numpy as np
import pytest

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import (
    OnPolicyValue,
    OPEConfig,
    OPEData,
    ResamplePlan,
    evaluate_arrays,
    make_estimator,
)
from clinical_mborl.ope.intervals import summarise
from clinical_mborl.ope.subgroups import (
    SubgroupDefinition,
    SubgroupDifference,
    first_step_labels,
    label_stays,
    subgroup_differences,
)
from clinical_mborl.report.inputs import SubgroupResult

ESTIMATORS = ("wis", "pdwis", "dr", "wdr", "fqe")


def grouped(seed: int = 0, n_episodes: int = 48, n_steps: int = 4) -> OPEData:
    """Random episodes with several stays per patient, Q-values, and softening."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, n_steps + 1, size=n_episodes)
    mask = np.arange(n_steps)[None, :] < lengths[:, None]
    shape = (n_episodes, n_steps)
    return OPEData.create(
        rewards=rng.normal(size=shape), mask=mask, patient=rng.integers(0, n_episodes // 2, size=n_episodes),
        pb=rng.uniform(0.2, 1.0, shape), pe=rng.uniform(0.0, 1.0, shape), gamma=0.9,
        q_sa=rng.normal(size=shape), v_s=rng.normal(size=shape), soften_epsilon=0.05,
    )


def restrict(data: OPEData, episodes: np.ndarray) -> OPEData:
    """The data made of the given episode rows (repeats allowed), one pseudo-patient per row."""
    assert data.q_sa is not None and data.v_s is not None
    return OPEData(data.rewards[episodes], data.mask[episodes], np.arange(episodes.size), data.pb[episodes],
                   data.pe[episodes], data.gamma, data.return_bounds, data.q_sa[episodes], data.v_s[episodes])


def naive_difference(name: str, data: OPEData, episodes: np.ndarray) -> float:
    if episodes.size == 0:
        return float("nan")
    sub = restrict(data, episodes)
    return make_estimator(name).estimate(sub) - OnPolicyValue().estimate(sub)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_subgroup_interval_equals_naive_recomputation_on_each_resample(name):
    data = grouped()
    labels = np.where(np.random.default_rng(1).random(data.n_episodes) < 0.4, "a", "b")
    config = OPEConfig(n_resamples=25, seed=3, soften_epsilon=0.05, method="bca")
    got = {r.level: r for r in subgroup_differences(data, {"x": labels}, (name,), config)}
    plan = ResamplePlan(data.n_patients, 25, seed=3)
    for level in ("a", "b"):
        in_g = labels == level
        members = np.unique(data.patient[in_g])
        boot = np.array([naive_difference(name, data, np.concatenate(
            [np.flatnonzero(in_g & (data.patient == p)).repeat(c) for p, c in enumerate(counts)]))
            for counts in plan.counts()])
        jack = np.array([naive_difference(name, data, np.flatnonzero(in_g & (data.patient != p))) for p in members])
        value = naive_difference(name, data, np.flatnonzero(in_g))
        want = summarise(value, boot, jack, config.level, config.method)
        r = got[level]
        assert r.n_patients == members.size
        assert r.difference == pytest.approx(value, rel=1e-9, abs=1e-12)
        assert (r.ci_low, r.ci_high, r.lower_bound) == pytest.approx((want.low, want.high, want.lower_bound),
                                                                     rel=1e-9, abs=1e-12)


def test_a_group_holding_everyone_reproduces_the_overall_paired_difference():
    data = grouped(seed=4)
    config = OPEConfig(n_resamples=300, seed=7, soften_epsilon=0.05, estimators=("wis", "wdr"))
    overall = evaluate_arrays(data, config)
    subs = subgroup_differences(data, {"all": np.full(data.n_episodes, "everyone")}, ("wis", "wdr"), config)
    for s in subs:
        d = overall.difference(s.estimator)
        assert (s.difference, s.ci_low, s.ci_high, s.lower_bound) == pytest.approx(
            (d.value, d.ci_low, d.ci_high, d.lower_bound), rel=1e-12)
        assert s.n_patients == data.n_patients


def test_ess_is_that_of_the_in_group_trajectory_weights():
    data = grouped(seed=2)
    labels = np.where(np.arange(data.n_episodes) < 20, "first", "rest")
    res = {r.level: r for r in subgroup_differences(data, {"x": labels}, ("wis", "fqe"), OPEConfig(n_resamples=50))
           if r.estimator == "wis"}
    w = np.cumprod(data.ratios(), axis=1)[:, -1][:20]
    assert res["first"].ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    fqe = subgroup_differences(data, {"x": labels}, ("fqe",), OPEConfig(n_resamples=50))
    assert all(r.ess is None for r in fqe)


def test_bad_inputs_are_refused():
    data = grouped()
    with pytest.raises(InputError, match="one entry per episode"):
        subgroup_differences(data, {"x": np.array(["a"])}, ("wis",), OPEConfig(n_resamples=10))
    no_q = OPEData.create(np.zeros((4, 1)), np.ones((4, 1), bool), np.arange(4), pb=np.full((4, 1), 0.5),
                          pe=np.full((4, 1), 0.5), gamma=1.0)
    with pytest.raises(InputError, match="cannot run"):
        subgroup_differences(no_q, {"x": np.array(list("aabb"))}, ("wdr",), OPEConfig(n_resamples=10))


def test_labels_from_first_step_states_respect_missing_indicators_and_bands():
    names = ["sex_female", "age_years", "lactate_mmol_l", "lactate_mmol_l_missing", "map_mmhg"]
    x = np.array([
        [1.0, 49.9, 5.0, 1.0, 80.0],  # lactate imputed: not severe
        [0.0, 50.0, 5.0, 0.0, 80.0],  # observed lactate >= 4: severe
        [0.5, 80.0, 1.0, 0.0, 64.9],  # MAP < 65: severe; sex not 0/1
        [0.0, 79.9, 3.99, 0.0, 65.0],
    ])
    lab = label_stays(x, names)
    assert lab["sex"].tolist() == ["female", "male", "unknown", "male"]
    assert lab["age_band"].tolist() == ["18-49", "50-64", "80+", "65-79"]
    assert lab["severity"].tolist() == ["not severe", "severe", "severe", "not severe"]
    custom = label_stays(x, names, SubgroupDefinition(attributes=("age_band",), age_edges=(65.0,)))
    assert list(custom) == ["age_band"] and custom["age_band"].tolist() == ["18-64", "18-64", "65+", "65+"]


def test_first_step_labels_follow_the_ope_episode_order_and_need_the_features():
    ts = make_toy_transitions(40, seed=0)
    definition = SubgroupDefinition(attributes=("severity",), map_threshold=75.0, lactate_threshold=3.0)
    lab = first_step_labels(ts, ("test",), definition)["severity"]
    first = ts.frame.filter((ts.frame["split"] == "test") & (ts.frame["step"] == 0)).sort("stay_id")
    want = np.where((first["map_mmhg"].to_numpy() < 75.0) | (first["lactate_mmol_l"].to_numpy() >= 3.0),
                    "severe", "not severe")
    assert lab.tolist() == want.tolist()
    with pytest.raises(InputError, match="sex_female"):
        first_step_labels(ts, ("test",), SubgroupDefinition(attributes=("sex",)))


def test_results_convert_to_the_report_model():
    r = SubgroupDifference(attribute="sex", level="female", n_patients=40, estimator="wdr", difference=0.1,
                           ci_low=-0.1, ci_high=0.3, lower_bound=-0.05, ess=12.0)
    assert SubgroupResult.model_validate(r.model_dump()).lower_bound == -0.05
