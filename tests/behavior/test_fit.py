"""fit_behavior: probabilities, cross-fitting, determinism, continuous densities."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.behavior.models import fit_temperature, patient_folds, zero_inflated_log_density
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.policy import ContinuousPolicy, Policy

from .conftest import TINY


def _raw_states(ts: TransitionSet) -> np.ndarray:
    return ts.frame.select(ts.feature_names).to_numpy()


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)),
              elements=st.floats(-1e4, 1e4, allow_nan=False)))
def test_probabilities_sum_to_one(discrete_policy: ClinicianPolicy, states: np.ndarray) -> None:
    p = discrete_policy.action_probabilities(states)
    assert p.shape == (states.shape[0], 9)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)


def test_out_of_fold_rows_are_probability_vectors(discrete_policy: ClinicianPolicy, toy_discrete: TransitionSet) -> None:
    oof = discrete_policy.out_of_fold_proba_for(toy_discrete)
    assert oof.shape == (len(toy_discrete.split("train")), 9)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-9)
    logged = toy_discrete.split("train").arrays().actions
    np.testing.assert_allclose(np.log(oof[np.arange(len(logged)), logged]), discrete_policy.out_of_fold_log_density)


def test_protocols(discrete_policy: ClinicianPolicy, continuous_policy: ClinicianPolicy) -> None:
    assert isinstance(discrete_policy, Policy)
    assert isinstance(continuous_policy, ContinuousPolicy)
    assert discrete_policy.action_kind == "discrete" and continuous_policy.action_kind == "continuous"
    with pytest.raises(TypeError):
        continuous_policy.action_probabilities(np.zeros((1, 4)))
    with pytest.raises(TypeError):
        discrete_policy.log_density(np.zeros((1, 4)), np.zeros((1, 2)))


def test_normalised_api_matches_raw_api(discrete_policy: ClinicianPolicy, toy_discrete: TransitionSet) -> None:
    raw = _raw_states(toy_discrete)
    norm = toy_discrete.normalizer.transform(raw)
    p_np = discrete_policy.predict_proba_normalised(norm)
    p_t = discrete_policy.predict_proba_normalised(torch.as_tensor(norm))
    assert isinstance(p_t, torch.Tensor) and p_t.dtype == torch.float32
    np.testing.assert_allclose(p_np, discrete_policy.action_probabilities(raw), atol=1e-6)
    np.testing.assert_allclose(p_t.numpy(), p_np, atol=1e-6)


def _alter_fold(ts: TransitionSet, fold: int, column: str, value: object) -> tuple[TransitionSet, np.ndarray]:
    """Overwrite `column` on every train row of the patients in `fold` (same rows, same order)."""
    train = ts.split("train")
    fold_of = patient_folds(train.arrays().patient, TINY.n_folds, TINY.seed)
    keys = train.frame["patient_key"].to_numpy()[fold_of == fold]
    hit = (pl.col("split") == "train") & pl.col("patient_key").is_in(list(keys))
    frame = ts.frame.with_columns(pl.when(hit).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))
    return TransitionSet(frame, ts.manifest), fold_of


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_out_of_fold_never_saw_its_patient(kind: str, request: pytest.FixtureRequest) -> None:
    ts: TransitionSet = request.getfixturevalue(f"toy_{kind}")
    base: ClinicianPolicy = request.getfixturevalue(f"{kind}_policy")
    column, value = ("action", 8) if kind == "discrete" else ("iv_fluid_ml", 1400.0)
    altered, fold_of = _alter_fold(ts, 0, column, value)
    refit = fit_behavior(altered, TINY)
    own = fold_of == 0
    # the fold-0 model never saw fold-0 patients: their out-of-fold values cannot move
    if kind == "discrete":
        np.testing.assert_array_equal(refit.out_of_fold_proba[own], base.out_of_fold_proba[own])
        assert not np.allclose(refit.out_of_fold_proba[~own], base.out_of_fold_proba[~own])
    else:
        # the logged dose of fold-0 rows changed, so compare the fold-0 model's density at the old doses
        x = torch.as_tensor(ts.split("train").arrays().states)[own]
        d = torch.as_tensor(ts.split("train").arrays().doses, dtype=torch.float32)[own]
        old = zero_inflated_log_density(*base.fold_params(x, 0), d)
        new = zero_inflated_log_density(*refit.fold_params(x, 0), d)
        torch.testing.assert_close(new, old, rtol=0, atol=0)
        assert not np.allclose(refit.out_of_fold_log_density[~own], base.out_of_fold_log_density[~own])


def test_same_seed_same_result(toy_discrete: TransitionSet, discrete_policy: ClinicianPolicy) -> None:
    again = fit_behavior(toy_discrete, TINY)
    np.testing.assert_array_equal(again.out_of_fold_proba, discrete_policy.out_of_fold_proba)
    raw = _raw_states(toy_discrete)
    np.testing.assert_array_equal(again.action_probabilities(raw), discrete_policy.action_probabilities(raw))
    other = fit_behavior(toy_discrete, TINY.model_copy(update={"seed": 4}))
    assert not np.allclose(other.out_of_fold_proba, discrete_policy.out_of_fold_proba)


def test_sampling_follows_probabilities(discrete_policy: ClinicianPolicy) -> None:
    states = np.tile(np.array([[75.0, 2.5, 95.0, 1.4]]), (20000, 1))
    counts = np.bincount(discrete_policy.sample_actions(states, np.random.default_rng(0)), minlength=9)
    p = discrete_policy.action_probabilities(states[:1])[0]
    np.testing.assert_allclose(counts / counts.sum(), p, atol=0.015)


def test_continuous_density_integrates_to_one() -> None:
    logit, mu, sigma = torch.tensor([[0.3]]), torch.tensor([[1.0]]), torch.tensor([[0.7]])
    grid = torch.linspace(1e-6, 200.0, 400001)[:, None]
    dens = zero_inflated_log_density(logit.expand(len(grid), 1), mu.expand(len(grid), 1),
                                     sigma.expand(len(grid), 1), grid).exp()
    p0 = zero_inflated_log_density(logit, mu, sigma, torch.zeros(1, 1)).exp()
    total = float(p0) + float(torch.trapezoid(dens, grid[:, 0]))
    assert math.isclose(total, 1.0, abs_tol=2e-3)
    assert math.isclose(float(p0), 1 - 1 / (1 + math.exp(-0.3)), rel_tol=1e-6)


def test_continuous_samples_and_density(continuous_policy: ClinicianPolicy, toy_continuous: TransitionSet) -> None:
    raw = _raw_states(toy_continuous)[:50]
    doses = continuous_policy.sample_actions(raw, np.random.default_rng(0))
    assert doses.shape == (50, 2) and np.all(doses >= 0) and np.any(doses == 0) and np.any(doses > 0)
    ld = continuous_policy.log_density(raw, doses)
    assert ld.shape == (50,) and np.all(np.isfinite(ld))
    cal = continuous_policy.calibration["splits"]["test"]["dimensions"]["iv_fluid_ml"]
    assert 0.0 <= cal["coverage_50"] <= cal["coverage_90"] <= 1.0


def test_temperature_recovers_a_known_scale() -> None:
    g = torch.Generator().manual_seed(0)
    true_logits = 2.0 * torch.randn(20000, 4, generator=g)
    y = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=g)[:, 0]
    assert math.isclose(fit_temperature(3.0 * true_logits, y), 3.0, rel_tol=0.05)


def test_wrong_rows_and_too_few_patients_refused(discrete_policy: ClinicianPolicy) -> None:
    with pytest.raises(InputError, match="fit rows differ"):
        discrete_policy.out_of_fold_proba_for(make_toy_transitions(60, seed=9))
    with pytest.raises(InputError, match="at least"):
        fit_behavior(make_toy_transitions(8, seed=0), BehaviorConfig(n_folds=5))
