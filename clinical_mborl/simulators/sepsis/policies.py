"""Simulator-only policies for the closed loop: usual care and an oracle that sees the latent state.

Any `clinical_mborl.core.policy.Policy` can also be evaluated (it sees charted states only);
these two are special: `UsualCare` lets the simulated clinician act (the behaviour policy of the
simulated data), `Oracle` reads the true physiology and plans with the true model:

- fluid only while the patient is on the steep part of the Frank-Starling curve (a 0.1 rise in
  V would raise stroke volume > 8%), not overloaded (FO% < 6) and SpO2 >= 92%: enough to bring
  V to 0.95 of normal;
- the smallest norepinephrine dose (<= 0.5 ug/kg/min, no toxic range) whose predicted MAP, with
  half the planned fluid on board, is >= 70 mmHg.

With discrete cohorts the oracle's doses are rounded to the nearest level's median dose, so it
acts through the same action space as any learned policy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from clinical_mborl.cohort.manifest import ActionSpaceInfo
from clinical_mborl.simulators.sepsis.engine import SepsisSimulator
from clinical_mborl.simulators.sepsis.physiology import HourDoses, haemodynamics, observe

ORACLE_MAP_TARGET = 70.0
ORACLE_NE_CANDIDATES = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.06, 0.03, 0.0)


class UsualCare:
    """The simulated clinician (no external control): the ground truth of the behaviour policy."""

    name = "clinician"
    action_kind: Literal["discrete", "continuous"] = "continuous"
    feature_names: tuple[str, ...] = ()


class Oracle:
    """Sees the latent state; returns (fluid mL per step, norepinephrine ug/kg/min) per stay."""

    name = "oracle"
    action_kind: Literal["discrete", "continuous"] = "continuous"
    feature_names: tuple[str, ...] = ()

    def doses(self, sim: SepsisSimulator, idx: np.ndarray) -> np.ndarray:
        """Desired doses [len(idx), 2] (fluid mL over the next step, norepinephrine) for the stays `idx`."""
        p, s, phys = sim.patients.subset(idx), sim.state.subset(idx), sim.cfg.physiology
        n = idx.size
        bv = phys.blood_volume_ml_per_kg * p.weight_kg
        obs = observe(s, p, HourDoses.zeros(n), phys)
        v2, k2 = s.volume**2, p.starling_k**2
        stroke = v2 / (v2 + k2) * (1.0 + k2)
        slope = 2.0 * s.volume * k2 / (v2 + k2) ** 2 * (1.0 + k2)
        responsive = (slope * 0.1 / stroke > 0.08) & (obs.fluid_overload_pct < 6.0) & (obs.spo2 >= 92.0)
        fluid = np.where(responsive, np.clip((0.95 - s.volume) * bv * 1.5, 250.0, 2000.0), 0.0)
        planned = s.copy()
        planned.volume = s.volume + 0.5 * fluid / bv
        ne = np.full(n, ORACLE_NE_CANDIDATES[0])
        for dose in ORACLE_NE_CANDIDATES:
            predicted, _, _ = haemodynamics(planned, p, np.full(n, dose), phys)
            ne = np.where(predicted >= ORACLE_MAP_TARGET, dose, ne)
        return np.stack([fluid, ne], axis=1)


def nearest_level_doses(desired: np.ndarray, space: ActionSpaceInfo) -> tuple[np.ndarray, np.ndarray]:
    """Round desired doses [n, dims] to the nearest level's median dose: (joint index, doses).

    >>> from clinical_mborl.cohort.manifest import ActionDimensionInfo
    >>> dims = [ActionDimensionInfo(name="a", unit="mL", n_levels=3, median_dose=[0.0, 100.0, 500.0])]
    >>> nearest_level_doses(np.array([[320.0], [0.0]]), ActionSpaceInfo(kind="discrete", dimensions=dims))[1].ravel().tolist()
    [500.0, 0.0]
    """
    levels = np.zeros(desired.shape, dtype=np.int64)
    for j, dim in enumerate(space.dimensions):
        med = np.asarray(dim.median_dose or [0.0], dtype=np.float64)
        levels[:, j] = np.abs(desired[:, j, None] - med[None, :]).argmin(axis=1)
    joint = space.joint_index(levels)
    return joint, space.doses_of(joint)
