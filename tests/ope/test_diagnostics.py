"""Overlap diagnostics: Kish ESS, weight share, clipping, clinician support."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import (
    OPEData,
    ResamplePlan,
    kish_ess,
    support_share_outside,
    weight_diagnostics,
)

from .tabular import ope_data, simulate, tabular_policies


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(0.0, 1e6)))
def test_kish_ess_lies_between_one_and_n(w):
    ess = kish_ess(w)
    if w.sum() == 0:
        assert ess == 0.0
    else:
        assert 1.0 - 1e-9 <= ess <= w.size + 1e-9


def test_kish_ess_known_values():
    assert kish_ess(np.ones(7)) == pytest.approx(7.0)
    assert kish_ess(np.array([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert kish_ess(np.array([1.0, 3.0])) == pytest.approx(16 / 10)
    np.testing.assert_allclose(kish_ess(np.array([[1.0, 2.0], [1.0, 0.0]]), axis=0), [2.0, 1.0])


def one_step(pb: np.ndarray, pe: np.ndarray, patient: np.ndarray | None = None) -> OPEData:
    n = pb.size
    return OPEData.create(np.zeros((n, 1)), np.ones((n, 1), bool), np.arange(n) if patient is None else patient,
                          pb=pb[:, None], pe=pe[:, None], gamma=1.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), clip=st.floats(0.5, 20.0), n=st.integers(3, 40))
def test_clipping_is_reported_with_the_share_clipped(seed, clip, n):
    rng = np.random.default_rng(seed)
    pb, pe = rng.uniform(0.05, 1.0, n), rng.uniform(0.0, 1.0, n)
    data = one_step(pb, pe)
    dg = weight_diagnostics(data, clip, ResamplePlan(n, 50, seed=0))
    raw = pe / pb
    assert dg.clipped_share == pytest.approx(float(np.mean(raw > clip)))
    w, _ = data.cumulative_weights(clip)
    assert w.max() <= clip
    if raw.sum() > 0:
        assert 1.0 - 1e-9 <= dg.ess <= n + 1e-9
        assert dg.ess_low <= dg.ess_high
        assert 1.0 / n - 1e-12 <= dg.max_weight_share <= 1.0


def test_diagnostics_on_a_tabular_mdp_match_direct_formulas():
    mdp, pi_b, pi_e = tabular_policies(3.0)
    data = ope_data(mdp, simulate(mdp, pi_b, 2000, np.random.default_rng(0)), pi_b, pi_e)
    dg = weight_diagnostics(data, clip=20.0, plan=ResamplePlan(data.n_patients, 400, seed=0), support_threshold=0.2)
    raw = np.cumprod(data.pe / data.pb, axis=1)
    w = np.minimum(raw[:, -1], 20.0)
    assert dg.ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert dg.ess_low < dg.ess < dg.ess_high
    assert dg.max_weight_share == pytest.approx(w.max() / w.sum())
    assert dg.clipped_share == pytest.approx(np.mean(raw[:, -1] > 20.0))
    assert dg.clipped_step_share == pytest.approx(np.mean(raw[data.mask] > 20.0))
    assert dg.ess_min_step <= dg.ess + 1e-9  # weights only spread out over steps
    rec = pi_e[:, :].argmax(axis=1)
    outside = pi_b[np.arange(mdp.n_states), rec] < 0.2
    sim = simulate(mdp, pi_b, 2000, np.random.default_rng(0))
    assert dg.support_share_outside == pytest.approx(float(outside[sim.states[sim.mask]].mean()))


def test_ess_interval_resamples_patients_not_stays():
    # 10 patients with 5 identical stays each: resampling patients keeps stays together
    pb = np.full(50, 0.5)
    pe = np.repeat(np.linspace(0.05, 1.0, 10), 5)
    grouped = weight_diagnostics(one_step(pb, pe, np.repeat(np.arange(10), 5)), None, ResamplePlan(10, 500))
    split = weight_diagnostics(one_step(pb, pe), None, ResamplePlan(50, 500))
    assert grouped.ess == pytest.approx(split.ess)
    assert grouped.ess_high - grouped.ess_low > 1.5 * (split.ess_high - split.ess_low)


def test_support_share_needs_the_recommendation():
    data = one_step(np.full(3, 0.5), np.full(3, 0.5))
    assert support_share_outside(data) is None
    with pytest.raises(InputError):
        support_share_outside(data, threshold=2.0)
