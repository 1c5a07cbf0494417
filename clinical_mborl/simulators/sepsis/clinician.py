"""Usual care: a stochastic, protocol-like clinician acting on charted (noisy, delayed) data.

Each stay gets its own clinician style (review interval, MAP target, bolus size, how many
boluses before a vasopressor, start dose, titration step, ceiling, agent preferences). At a
review the clinician reads the last charted MAP (mean of the last two), SpO2, urine output and
the last lactate result that has come back from the lab, then:

- gives a fluid bolus if MAP is below target, or (for some) lactate > 4 or urine < 0.5 mL/kg/h;
- starts a vasopressor once enough boluses have failed, titrates it up while MAP is low and
  down when MAP is above target + 8; adds vasopressin or epinephrine above 0.25 NE-eq.

Documented weaknesses, the room a better policy can use (all visible in ARISE/ProCESS-era
practice surveys and in the FACTT/CLOVERS debate on fluid):

1. no fluid-responsiveness assessment: hypotensive non-responders (cardiodepressed, vasoplegic)
   keep receiving boluses because their MAP does not rise;
2. vasopressors start late (after 1-5 boluses), low (0.02-0.1 ug/kg/min) and are titrated
   slowly, so vasoplegic patients spend hours below 65 mmHg;
3. only a third stop fluid on signs of overload (SpO2 < 92, > 50 mL/kg); the rest continue until
   110 mL/kg or SpO2 < 85; lactate-driven boluses overload cardiodepressed patients;
4. some push norepinephrine-equivalents above 0.5 ug/kg/min or use dopamine (arrhythmia).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinical_mborl.simulators.sepsis.charting import ChartView
from clinical_mborl.simulators.sepsis.config import ClinicianConfig

AGENTS = ("norepinephrine", "dopamine", "phenylephrine")
ADD_ONS = ("none", "vasopressin", "epinephrine")
AGENT_FACTOR = np.array([1.0, 0.01, 0.1])  # NE-eq per ug/kg/min of the primary agent
AGENT_BETA = np.array([1.0, 2.0, 0.0])  # beta-adrenergic load per NE-eq
N_RANDOM = 6
"""Uniforms the clinician uses per hour and stay (drawn for every stay, reviewed or not)."""


@dataclass
class Orders:
    """What is running now, per stay."""

    maintenance_ml_h: np.ndarray
    primary_agent: np.ndarray  # index into AGENTS
    primary_ne: np.ndarray  # NE-equivalent dose of the primary agent, ug/kg/min
    add_on: np.ndarray  # index into ADD_ONS (chosen style)
    add_on_running: np.ndarray  # bool
    add_on_dose: np.ndarray  # vasopressin units/min or epinephrine ug/kg/min

    def ne_eq(self) -> np.ndarray:
        """Total norepinephrine-equivalent dose (ug/kg/min)."""
        extra = np.where(self.add_on == 1, 2.5, 1.0) * self.add_on_dose * self.add_on_running
        return self.primary_ne + extra

    def adrenergic(self) -> np.ndarray:
        epi = np.where((self.add_on == 2) & self.add_on_running, self.add_on_dose, 0.0)
        return AGENT_BETA[self.primary_agent] * self.primary_ne + 1.5 * epi

    def epinephrine(self) -> np.ndarray:
        return np.where((self.add_on == 2) & self.add_on_running, self.add_on_dose, 0.0)


class Clinician:
    """Per-stay styles, memory and orders; `review` is vectorised over stays."""

    def __init__(self, weight_recorded: np.ndarray, cfg: ClinicianConfig, rng: np.random.Generator) -> None:
        n = weight_recorded.shape[0]
        self.cfg = cfg
        self.weight = np.where(np.isnan(weight_recorded), 80.0, weight_recorded)
        self.every = np.asarray(rng.choice(np.asarray(cfg.review_every_h), size=n, p=cfg.review_probs))
        self.phase: np.ndarray = np.asarray(rng.integers(0, 4, size=n))
        self.target: np.ndarray = np.round(rng.uniform(cfg.map_target[0], cfg.map_target[1], size=n))
        self.bolus_ml = np.asarray(rng.choice(np.asarray(cfg.bolus_ml), size=n, p=cfg.bolus_probs))
        self.before = np.asarray(rng.choice(np.asarray(cfg.boluses_before_pressor), size=n,
                                            p=cfg.boluses_before_pressor_probs))
        self.start_dose = np.asarray(rng.choice(np.asarray(cfg.pressor_start), size=n))
        self.step: np.ndarray = np.asarray(rng.uniform(cfg.pressor_step[0], cfg.pressor_step[1], size=n))
        self.ceiling = np.asarray(rng.choice(np.asarray(cfg.pressor_max), size=n, p=cfg.pressor_max_probs))
        self.act_p: np.ndarray = np.asarray(rng.uniform(cfg.act_probability[0], cfg.act_probability[1], size=n))
        self.aware: np.ndarray = np.asarray(rng.random(size=n) < cfg.overload_aware_share)
        self.lactate_driven: np.ndarray = np.asarray(rng.random(size=n) < cfg.lactate_driven_share)
        self.oliguria_driven: np.ndarray = np.asarray(rng.random(size=n) < cfg.oliguria_driven_share)
        self.colloid_share: np.ndarray = np.where(rng.random(size=n) < cfg.colloid_user_share, rng.uniform(0.2, 0.6, size=n), 0.0)
        agent = np.asarray(rng.choice(3, size=n, p=cfg.primary_agent_probs))
        self.ug_min: np.ndarray = np.asarray((rng.random(size=n) < cfg.ug_min_share) & ~np.isnan(weight_recorded) & (agent == 0))
        add_on = np.asarray(rng.choice(3, size=n, p=cfg.second_agent_probs))
        self.add_on_dose = np.where(add_on == 1, rng.choice([0.03, 0.04], size=n), rng.choice([0.02, 0.05, 0.1], size=n))
        self.orders = Orders(
            maintenance_ml_h=np.asarray(rng.choice(np.asarray(cfg.maintenance_ml_h), size=n)),
            primary_agent=agent,
            primary_ne=np.zeros(n),
            add_on=add_on,
            add_on_running=np.zeros(n, dtype=bool),
            add_on_dose=np.zeros(n),
        )
        self.boluses = np.zeros(n, dtype=np.int64)
        self.fluid_ml = np.zeros(n)

    def due(self, hour: int, view: ChartView, u: np.ndarray) -> np.ndarray:
        """Scheduled reviews, plus escalation (70%) when the last MAP is 10 below target.

        With `review_at_steps_h = k` only at hours 0, k, 2k, ... (no escalation in between).
        """
        if self.cfg.review_at_steps_h is not None:
            return np.full(self.every.shape[0], hour % self.cfg.review_at_steps_h == 0)
        scheduled = (hour - self.phase) % self.every == 0
        urgent = (view.map_last < self.target - 10) & (u < 0.7)
        return scheduled | urgent | (hour == 0)

    def review(self, idx: np.ndarray, view: ChartView, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Update orders of stays `idx`; return (bolus volume mL, colloid flag) for them.

        `u` is [N_RANDOM, len(idx)] uniforms.
        """
        o, w = self.orders, self.weight[idx]
        last, prev = view.map_last[idx], view.map_prev[idx]
        last = np.where((last < 20) | (last > 250), prev, last)  # ignore transducer artefacts
        map_obs = np.where(np.isnan(prev) | (prev < 20) | (prev > 250), last, 0.5 * (last + prev))
        target = self.target[idx]
        map_obs = np.where(np.isnan(map_obs), target, map_obs)
        hypo = map_obs < target
        lactate = np.nan_to_num(view.lactate_seen[idx], nan=0.0)
        oliguric = np.nan_to_num(view.urine_rate[idx], nan=np.inf) / w < 0.5
        spo2 = np.nan_to_num(view.spo2_last[idx], nan=97.0)
        per_kg = self.fluid_ml[idx] / w
        blocked = ((per_kg > self.cfg.fluid_hard_cap_ml_per_kg) | (spo2 < 85)
                   | (self.aware[idx] & ((spo2 < 92) | (per_kg > 50))))
        indicated = hypo | (self.lactate_driven[idx] & (lactate > 4)) | (self.oliguria_driven[idx] & oliguric)
        give = indicated & ~blocked & (u[0] < self.act_p[idx])
        volume = np.where(give, self.bolus_ml[idx], 0.0)
        colloid = give & (u[1] < self.colloid_share[idx])
        self.boluses[idx] += give
        # Vasopressor: late start, low dose, slow titration (weakness 2); ceiling may exceed 0.5.
        dose = o.primary_ne[idx]
        start = (dose <= 0) & hypo & ((self.boluses[idx] >= self.before[idx]) | blocked) & (u[2] < self.act_p[idx])
        up = (dose > 0) & hypo & (u[2] < self.act_p[idx])
        down = (dose > 0) & (map_obs > target + 8)
        new = np.where(start, np.maximum(self.start_dose[idx], np.where(o.primary_agent[idx] > 0, 0.05, 0.0)), dose)
        new = np.where(up, np.minimum(dose * self.step[idx] + 0.01, self.ceiling[idx]), new)
        new = np.where(down, dose * 0.75, new)
        new = np.where(new < 0.02, 0.0, new)
        o.primary_ne[idx] = np.round(new, 3)
        running = o.add_on_running[idx]
        o.add_on_running[idx] = np.where(running, new >= 0.1, (o.add_on[idx] > 0) & (new >= 0.25))
        o.add_on_dose[idx] = np.where(o.add_on_running[idx], self.add_on_dose[idx], 0.0)
        if self.aware.any():
            o.maintenance_ml_h[idx] = np.where(self.aware[idx] & (spo2 < 92), 0.0, o.maintenance_ml_h[idx])
        return volume, colloid

    def native_rates(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Charted rate per vasopressor channel (its own units) for stays `idx`."""
        o = self.orders
        agent, ne = o.primary_agent[idx], o.primary_ne[idx]
        native = ne / AGENT_FACTOR[agent]
        ne_rate = np.where(self.ug_min[idx], np.round(ne * self.weight[idx], 1), ne)
        on = o.add_on_running[idx]
        return {
            "norepinephrine": np.where(agent == 0, ne_rate, 0.0),
            "dopamine": np.where(agent == 1, native, 0.0),
            "phenylephrine": np.where(agent == 2, native, 0.0),
            "vasopressin": np.where(on & (o.add_on[idx] == 1), o.add_on_dose[idx], 0.0),
            "epinephrine": np.where(on & (o.add_on[idx] == 2), o.add_on_dose[idx], 0.0),
        }

    def take_over(self, idx: np.ndarray, ne_dose: np.ndarray) -> None:
        """Resume usual care after an external controller: continue its norepinephrine."""
        o = self.orders
        o.primary_agent[idx] = 0
        o.primary_ne[idx] = np.round(ne_dose, 3)
        o.add_on_running[idx] = False
        o.add_on_dose[idx] = 0.0
        self.ug_min[idx] = False
