"""`SepsisEnv`: a gymnasium environment over the same simulator, for online comparisons.

One episode is one ICU stay. Every `step_hours` the agent chooses an IV fluid volume for the
step and a norepinephrine rate, held for the step exactly as in the closed-loop ground truth.
The observation is what the bedside chart shows: the last charted value of each variable in
canonical units (MAP, heart rate, SpO2, respiratory rate, temperature degC, GCS, urine output
mL/h since the previous charting, lactate mmol/L, creatinine mg/dL, bilirubin, platelets,
WBC; a typical adult value until first charted) plus the hours since admission. The latent
physiology is never observed. When the window ends the simulated clinician takes over until
discharge or death (`finish_with_clinician`), and the reward is +1 for hospital survival and
-1 for death at the end of the episode, 0 otherwise.

Actions: `Discrete(25)`, joint index = fluid level * 5 + vasopressor level over
`fluid_levels_ml` x `pressor_levels` (row-major, like the cohort's joint index), or a `Box`
of (fluid mL per step, norepinephrine ug/kg/min) with `continuous=True`.

>>> env = SepsisEnv()
>>> obs, info = env.reset(seed=0)
>>> obs.shape
(13,)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from clinical_mborl.simulators.sepsis.charting import (
    CREATININE_UMOL_PER_MGDL,
    LACTATE_MGDL_PER_MMOL,
    UNIT,
    VAR,
    VARIABLES,
)
from clinical_mborl.simulators.sepsis.config import SepsisConfig
from clinical_mborl.simulators.sepsis.engine import SepsisSimulator

OBSERVED = VARIABLES
TYPICAL = np.array([80.0, 90.0, 96.0, 18.0, 37.0, 15.0, 60.0, 1.5, 1.0, 0.7, 220.0, 9.0])
"""Shown until a variable is first charted (typical adult values)."""
FLUID_LEVELS_ML = (0.0, 250.0, 500.0, 1000.0, 2000.0)
PRESSOR_LEVELS = (0.0, 0.03, 0.08, 0.15, 0.3)


class SepsisEnv(gym.Env[np.ndarray, Any]):
    """One simulated ICU stay with sepsis per episode (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: SepsisConfig | None = None, step_hours: int = 4, window_hours: int = 72,
                 continuous: bool = False, fluid_levels_ml: tuple[float, ...] = FLUID_LEVELS_ML,
                 pressor_levels: tuple[float, ...] = PRESSOR_LEVELS, finish_with_clinician: bool = True) -> None:
        if step_hours < 1 or window_hours < step_hours:
            raise ValueError(f"expected 1 <= step_hours <= window_hours, got {step_hours} and {window_hours}")
        self.config = config or SepsisConfig()
        self.step_hours, self.window_hours = int(step_hours), int(window_hours)
        self.continuous = continuous
        self.fluid_levels = np.asarray(fluid_levels_ml, dtype=np.float64)
        self.pressor_levels = np.asarray(pressor_levels, dtype=np.float64)
        self.finish_with_clinician = finish_with_clinician
        if continuous:
            self.action_space: gym.Space[Any] = gym.spaces.Box(
                low=np.zeros(2, np.float32), high=np.array([4000.0, 1.0], np.float32), dtype=np.float32)
        else:
            self.action_space = gym.spaces.Discrete(self.fluid_levels.size * self.pressor_levels.size)
        self.observation_space = gym.spaces.Box(low=0.0, high=1e4, shape=(len(OBSERVED) + 1,), dtype=np.float64)
        self._sim: SepsisSimulator | None = None
        self._last = TYPICAL.copy()
        self._seen_rows = 0

    # ------------------------------------------------------------------ helpers
    def doses(self, action: Any) -> tuple[float, float]:
        """(fluid mL over the step, norepinephrine ug/kg/min) of an action."""
        if self.continuous:
            a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), 0.0, [4000.0, 1.0])
            return float(a[0]), float(a[1])
        i = int(action)
        if not 0 <= i < self.action_space.n:  # type: ignore[attr-defined]
            raise ValueError(f"action must be in [0, {self.action_space.n}), got {action}")  # type: ignore[attr-defined]
        return float(self.fluid_levels[i // self.pressor_levels.size]), float(self.pressor_levels[i % self.pressor_levels.size])

    def _observe(self) -> np.ndarray:
        assert self._sim is not None
        _, _, var, value, unit = self._sim.charter.rows()
        for v, x, u in zip(var[self._seen_rows:], value[self._seen_rows:], unit[self._seen_rows:], strict=True):
            if v == VAR["urine_output"] or (v in (VAR["map"], VAR["heart_rate"]) and (x < 20 or x > 250)):
                continue  # urine is shown as a rate below; MAP/HR outside 20-250 are transducer artefacts
            if u == UNIT["degF"]:
                x = (x - 32.0) * 5.0 / 9.0
            elif v == VAR["lactate"] and u == UNIT["mg/dL"]:
                x = x / LACTATE_MGDL_PER_MMOL
            elif u == UNIT["umol/L"]:
                x = x / CREATININE_UMOL_PER_MGDL
            self._last[int(v)] = x
        self._seen_rows = var.size
        urine = self._sim.charter.view.urine_rate[0]
        if not np.isnan(urine):
            self._last[VAR["urine_output"]] = urine
        return np.append(self._last, float(self._sim.hour)).astype(np.float64)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        cfg = self.config.model_copy(update={"population": self.config.population.model_copy(
            update={"readmission_share": 0.0})})
        self._sim = SepsisSimulator(1, sim_seed, cfg)
        self._last, self._seen_rows = TYPICAL.copy(), 0
        return self._observe(), {"hour": 0, "phenotype": int(self._sim.patients.phenotype[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        sim = self._sim
        if not sim.active[0]:
            raise RuntimeError("the episode has ended; call reset()")
        fluid, ne = self.doses(action)
        idx = np.array([0])
        sim.hold(idx, np.array([fluid / self.step_hours]), np.array([ne]))
        sim.run_until(min(sim.hour + self.step_hours, self.window_hours))
        truncated = False
        if sim.active[0] and sim.hour >= self.window_hours:
            if not self.finish_with_clinician:
                truncated = True
            else:
                sim.release(idx)
                sim.run_until_done()
        terminated = not sim.active[0]
        reward = (-1.0 if sim.died[0] else 1.0) if terminated else 0.0
        info = {"hour": sim.hour, "phenotype": int(sim.patients.phenotype[0]), "died": bool(sim.died[0])}
        return self._observe(), reward, terminated, truncated, info
