"""Treatment history for the OPE nuisance models (`clinical_mborl.ope.history`)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.behavior import BehaviorConfig, fit_behavior
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import OPEConfig
from clinical_mborl.ope.fqe import FQEConfig
from clinical_mborl.ope.history import (
    fit_history_adjustment,
    history_frame,
    history_names,
    with_treatment_history,
)
from clinical_mborl.ope.policy_eval import build_ope_data, evaluate_policy
from clinical_mborl.policies import NoTreatmentPolicy

TOY = make_toy_transitions(40, seed=3)
DOSES = list(TOY.dose_columns)
FAST = OPEConfig(n_resamples=100, eval_splits=("val", "test"), estimators=("wis", "pdwis", "fqe"),
                 fqe=FQEConfig(hidden_sizes=(8,), epochs_per_iteration=1, n_members=2))


def _with_doses(doses: list[list[float]]) -> TransitionSet:
    """The toy cohort's first len(doses) stays with the given per-step fluid doses (other dose 0)."""
    frame = TOY.frame
    counts = frame.group_by("stay_id", maintain_order=True).len()
    stays = counts.filter(pl.col("len") >= 6)["stay_id"].to_list()
    assert len(stays) >= len(doses)
    parts = []
    for stay, d in zip(stays, doses, strict=False):
        rows = frame.filter(pl.col("stay_id") == stay).sort("step").head(len(d))
        parts.append(rows.with_columns(pl.Series(DOSES[0], d, dtype=pl.Float64), pl.lit(0.0).alias(DOSES[1])))
    return TransitionSet(pl.concat(parts), TOY.manifest)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(0, 5000, allow_nan=False), min_size=1, max_size=6), min_size=1, max_size=5),
       st.randoms(use_true_random=False))
def test_previous_and_cumulative_doses_are_exact_whatever_the_row_order(doses, rnd):
    ts = _with_doses(doses)
    order = list(range(ts.frame.height))
    rnd.shuffle(order)
    shuffled = TransitionSet(ts.frame[order], ts.manifest)
    hist = pl.concat([shuffled.frame.select("stay_id", "step"), history_frame(shuffled)], how="horizontal")
    for stay, d in zip(ts.frame["stay_id"].unique(maintain_order=True).to_list(), doses, strict=True):
        rows = hist.filter(pl.col("stay_id") == stay).sort("step")
        f = DOSES[0]
        expected_prev = [0.0, *d[:-1]]
        expected_cum = np.concatenate([[0.0], np.cumsum(d)[:-1]])
        np.testing.assert_allclose(rows["prev_" + f].to_numpy(), expected_prev)
        np.testing.assert_allclose(rows["cum_" + f].to_numpy(), expected_cum, rtol=1e-12, atol=1e-9)
        # the next state's history is the history one step on
        np.testing.assert_allclose(rows["next_prev_" + f].to_numpy(), d)
        np.testing.assert_allclose(rows["next_cum_" + f].to_numpy(), np.cumsum(d), rtol=1e-12, atol=1e-9)
        assert (rows["cum_" + DOSES[1]].to_numpy() == 0).all()


def test_augmented_cohort_keeps_the_state_and_normalises_history_on_train():
    aug = with_treatment_history(TOY)
    n = len(TOY.feature_names)
    assert aug.feature_names[:n] == TOY.feature_names
    assert list(aug.feature_names[n:]) == history_names(TOY) == [
        "prev_" + DOSES[0], "prev_" + DOSES[1], "cum_" + DOSES[0], "cum_" + DOSES[1]]
    np.testing.assert_array_equal(aug.arrays().states[:, :n], TOY.arrays().states)
    z = aug.split("train").arrays().states[:, n:]
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    assert TOY.frame.width + 2 * len(history_names(TOY)) == aug.frame.width


def test_missing_doses_and_gaps_are_refused_with_the_rows():
    frame = TOY.frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col(DOSES[0])).alias(DOSES[0]))
    with pytest.raises(InputError, match=rf"'{DOSES[0]}' has missing doses \(rows \[3\]\)"):
        history_frame(TransitionSet(frame, TOY.manifest))
    gap = TOY.frame.filter(~((pl.col("stay_id") == TOY.frame["stay_id"][0]) & (pl.col("step") == 1)))
    if gap["stay_id"].to_list().count(TOY.frame["stay_id"][0]) > 1:
        with pytest.raises(InputError, match="skip a step"):
            history_frame(TransitionSet(gap, TOY.manifest))


@pytest.fixture(scope="module")
def fitted():
    ts = make_toy_transitions(120, seed=0)
    cfg = BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=3)
    return ts, fit_behavior(ts, cfg), fit_history_adjustment(ts, cfg)


def test_weights_use_the_history_model_and_the_policy_still_sees_the_state(fitted):
    ts, pi_b, hist = fitted
    policy = NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space)
    data = build_ope_data(policy, ts, pi_b, None, FAST, hist)
    rows = hist.transitions.split("val", "test").arrays(normalised=False)
    p_bh = hist.behavior.action_probabilities(rows.states)
    taken = p_bh[np.arange(len(rows)), rows.actions]
    np.testing.assert_allclose(data.pb[rows.episode, rows.step], taken)
    p_e = policy.action_probabilities(hist.state_of(rows.states))[np.arange(len(rows)), rows.actions]
    np.testing.assert_allclose(data.pe[rows.episode, rows.step], 0.99 * p_e + 0.01 * taken)
    plain = build_ope_data(policy, ts, pi_b, None, FAST)
    assert not np.allclose(plain.pb, data.pb)  # the history model is a different model
    assert data.q_sa_members is not None and plain.q_sa_members is not None
    assert not np.allclose(plain.q_sa_members, data.q_sa_members)  # the Q-model saw (s, h)


def test_the_clinician_is_its_history_model_on_policy(fitted):
    ts, pi_b, hist = fitted
    cfg = FAST.model_copy(update={"estimators": ("wis", "pdwis")})
    data = build_ope_data(pi_b, ts, pi_b, None, cfg, hist)
    np.testing.assert_allclose(data.pe, data.pb)
    rows = hist.transitions.split("val", "test").arrays(normalised=False)
    p_bh = hist.behavior.action_probabilities(rows.states)[np.arange(len(rows)), rows.actions]
    np.testing.assert_allclose(data.pb[rows.episode, rows.step], p_bh)
    report = evaluate_policy(pi_b, ts, pi_b, None, cfg.model_copy(update={"adjust_for_history": True}))
    assert report.estimate("wis").value == pytest.approx(report.clinician.value, abs=1e-9)


def test_an_adjustment_from_another_cohort_is_refused(fitted):
    ts, pi_b, hist = fitted
    other = make_toy_transitions(120, seed=5)
    with pytest.raises(InputError, match="treatment-history adjustment was fitted on another cohort"):
        build_ope_data(NoTreatmentPolicy(other.feature_names, other.manifest.action_space), other,
                       fit_behavior(other, pi_b.config), None, FAST, hist)
