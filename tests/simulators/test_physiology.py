"""Shapes of the dose-response: diminishing returns, harms, and vectorisation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.simulators.sepsis.config import SepsisConfig
from clinical_mborl.simulators.sepsis.physiology import (
    HourDoses,
    death_hazard,
    haemodynamics,
    initial_state,
    observe,
    organ_score,
    severinghaus_spo2,
    step,
)
from clinical_mborl.simulators.sepsis.population import draw_patients

CFG = SepsisConfig()


def _patients(n: int, seed: int):
    rng = np.random.default_rng(seed)
    p = draw_patients(n, rng, CFG.population, CFG.physiology)
    return p, initial_state(p, CFG.physiology, rng)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), v=st.floats(0.5, 1.4))
def test_fluid_response_saturates(seed: int, v: float) -> None:
    """Frank-Starling: the MAP gain of +0.1 blood volume shrinks as volume rises."""
    p, s = _patients(20, seed)
    gains = []
    for base in (v, v + 0.2):
        s.volume = np.full(p.n, base)
        lo, _, _ = haemodynamics(s, p, np.zeros(p.n), CFG.physiology)
        s.volume = np.full(p.n, base + 0.1)
        hi, _, _ = haemodynamics(s, p, np.zeros(p.n), CFG.physiology)
        gains.append(hi - lo)
    assert (gains[0] > 0).all()
    assert (gains[1] < gains[0]).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), dose=st.floats(0.05, 1.0))
def test_vasopressor_emax(seed: int, dose: float) -> None:
    """Emax: MAP rises with the dose, by less for each further 0.05 ug/kg/min."""
    p, s = _patients(20, seed)
    m = [haemodynamics(s, p, np.full(p.n, d), CFG.physiology)[0] for d in (dose, dose + 0.05, dose + 0.1)]
    assert (m[1] >= m[0]).all() and (m[2] - m[1] <= m[1] - m[0] + 1e-9).all()


def test_overload_lowers_spo2_and_severinghaus_is_monotone() -> None:
    p, s = _patients(50, 1)
    spo2 = []
    for litres in (0.0, 4.0, 8.0):
        s.tissue_fluid_l = np.full(p.n, litres)
        spo2.append(observe(s, p, HourDoses.zeros(p.n), CFG.physiology).spo2)
    assert (spo2[1] < spo2[0]).all() and (spo2[2] < spo2[1]).all()
    pao2 = np.linspace(30, 150, 50)
    assert np.all(np.diff(severinghaus_spo2(pao2)) > 0)


def test_high_vasopressor_doses_are_toxic() -> None:
    """Above ~0.5 ug/kg/min: more arrhythmia and ischaemic organ injury than at 0.3."""
    p, s = _patients(4000, 2)
    noise = np.vstack([np.random.default_rng(3).random((2, p.n)), np.zeros((2, p.n))])

    def run(dose: float):
        d = HourDoses.zeros(p.n)
        d.ne_eq[:] = d.adrenergic[:] = dose
        return step(s, p, d, CFG.physiology, noise)[0]

    low, high = run(0.3), run(1.0)
    assert (high.arrhythmia_h > 0).mean() > 3 * max((low.arrhythmia_h > 0).mean(), 1e-3)
    assert (high.injury - low.injury).min() > 0.05


def test_hazard_rises_with_organ_failure_and_hypotension() -> None:
    p, s = _patients(500, 4)
    base = observe(s, p, HourDoses.zeros(p.n), CFG.physiology)
    worse = observe(s, p, HourDoses.zeros(p.n), CFG.physiology)
    worse.map = base.map - 15.0
    worse.creatinine = base.creatinine * 2.0
    assert (organ_score(worse) >= organ_score(base)).all()
    assert (death_hazard(worse, s, p, CFG.outcome) > death_hazard(base, s, p, CFG.outcome)).all()


def test_vectorised_step_equals_per_patient_step() -> None:
    """The batch step is the per-patient model applied to every row (no cross-talk)."""
    p, s = _patients(30, 5)
    rng = np.random.default_rng(6)
    d = HourDoses(rng.uniform(0, 800, p.n), rng.uniform(0, 200, p.n), rng.uniform(0, 0.6, p.n),
                  rng.uniform(0, 0.6, p.n), np.zeros(p.n))
    noise = np.vstack([rng.random((2, p.n)), rng.standard_normal((2, p.n))])
    batch, _ = step(s, p, d, CFG.physiology, noise)
    for i in range(p.n):
        idx = np.array([i])
        di = HourDoses(*(getattr(d, f)[idx] for f in ("crystalloid_ml", "colloid_ml", "ne_eq", "adrenergic",
                                                     "epinephrine")))
        one, _ = step(s.subset(idx), p.subset(idx), di, CFG.physiology, noise[:, idx])
        for f in ("volume", "tissue_fluid_l", "lactate", "kidney", "injury", "inflammation"):
            np.testing.assert_allclose(getattr(one, f), getattr(batch, f)[idx], rtol=1e-12)
