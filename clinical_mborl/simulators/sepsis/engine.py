"""`SepsisSimulator`: all stays advance together, one hour per call, under usual care or held doses.

Within hour k: the clinician reviews (at k:00-k:30, on data charted before the hour) or the held
doses of an external controller apply from k:00; the physiology steps; deaths happen in the
second half of the hour; survivors' vitals are charted in the last 20 minutes; stable patients
may be discharged exactly at the next hour mark. Random numbers are drawn in fixed blocks per
hour for every stay (common random numbers across policies).

>>> sim = SepsisSimulator(20, seed=0)
>>> sim.run_until_done()
>>> bool(sim.finished.all())
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clinical_mborl.simulators.sepsis.charting import Charter
from clinical_mborl.simulators.sepsis.clinician import N_RANDOM, Clinician
from clinical_mborl.simulators.sepsis.config import SepsisConfig
from clinical_mborl.simulators.sepsis.physiology import (
    HourDoses,
    Observables,
    death_hazard,
    initial_state,
    observe,
    organ_score,
    step,
)
from clinical_mborl.simulators.sepsis.population import draw_patients
from clinical_mborl.simulators.sepsis.treatments import RATE_UNIT, TreatmentLog

VASOPRESSOR_CHANNELS = ("norepinephrine", "dopamine", "phenylephrine", "vasopressin", "epinephrine")


class SepsisSimulator:
    """Vectorised simulation of `n` ICU stays from sepsis onset (admission) to death or discharge."""

    def __init__(self, n: int, seed: int, config: SepsisConfig | None = None) -> None:
        self.cfg = cfg = config or SepsisConfig()
        self.n = n
        self.seed = seed
        streams = np.random.SeedSequence(seed).spawn(7)
        pop, init, style, self._phys_rng, self._chart_rng, self._clin_rng, self._out_rng = (
            np.random.default_rng(s) for s in streams)
        self.patients = draw_patients(n, pop, cfg.population, cfg.physiology)
        self.state = initial_state(self.patients, cfg.physiology, init)
        self.charter = Charter(n, cfg.measurement, style)
        self.clinician = Clinician(self.patients.weight_recorded, cfg.clinician, style)
        self.log = TreatmentLog(n)
        self.hour = 0
        self.active = np.ones(n, dtype=bool)
        self.died = np.zeros(n, dtype=bool)
        self.died_in_icu = np.zeros(n, dtype=bool)
        self.end_minute = np.full(n, -1, dtype=np.int64)
        self.death_minute = np.full(n, -1, dtype=np.int64)
        self.stable_hours = np.zeros(n, dtype=np.int64)
        self.held = np.zeros(n, dtype=bool)
        self.held_fluid_ml_h = np.zeros(n)
        self.held_ne = np.zeros(n)
        self._force_review = np.zeros(n, dtype=bool)
        self.fluid_first_24h_ml = np.zeros(n)
        self.ever_vasopressor = np.zeros(n, dtype=bool)
        self.admission_obs: Observables = observe(self.state, self.patients, HourDoses.zeros(n), cfg.physiology)
        self.charter.chart(0, self.admission_obs, self.active, self._chart_rng, admission=True)

    # ------------------------------------------------------------------ status
    @property
    def finished(self) -> np.ndarray:
        return ~self.active

    @property
    def now_minute(self) -> int:
        return self.hour * 60

    # ------------------------------------------------------------------ external control
    def hold(self, idx: np.ndarray, fluid_ml_h: np.ndarray, ne_ug_kg_min: np.ndarray) -> None:
        """From now on give `idx` a crystalloid infusion and norepinephrine at fixed rates.

        Usual-care infusions stop; the rates are charted at exactly the current hour mark.
        """
        if not (idx.shape == np.shape(fluid_ml_h) == np.shape(ne_ug_kg_min)):
            raise ValueError("hold: expected one fluid rate and one dose per stay index")
        keep = self.active[idx]
        idx = idx[keep]
        fluid = np.round(np.clip(np.asarray(fluid_ml_h, dtype=np.float64)[keep], 0.0, None), 3)
        ne = np.round(np.clip(np.asarray(ne_ug_kg_min, dtype=np.float64)[keep], 0.0, None), 3)
        minute = np.full(idx.size, self.now_minute, dtype=np.int64)
        for channel in VASOPRESSOR_CHANNELS[1:]:
            self.log.set_rate(channel, idx, minute, np.zeros(idx.size))
        self.log.set_rate("norepinephrine", idx, minute, ne, np.full(idx.size, RATE_UNIT["ug/kg/min"]))
        self.log.set_rate("crystalloid", idx, minute, fluid)
        self.held[idx] = True
        self.held_fluid_ml_h[idx] = fluid
        self.held_ne[idx] = ne

    def release(self, idx: np.ndarray) -> None:
        """Hand `idx` back to the clinician, who continues the norepinephrine and reviews now."""
        idx = idx[self.held[idx]]
        self.clinician.take_over(idx, self.held_ne[idx])
        self.held[idx] = False
        self._force_review[idx] = True

    # ------------------------------------------------------------------ one hour
    def _usual_care(self, k: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Clinician reviews; returns (crystalloid bolus mL, colloid mL, action minute, share of hour before)."""
        n, clin = self.n, self.clinician
        care = self.active & ~self.held
        due = clin.due(k, self.charter.view, u[N_RANDOM])
        due = care & (due | self._force_review)
        idx = np.flatnonzero(due)
        offset = np.where(self._force_review[idx], 0, np.floor(u[N_RANDOM + 1, idx] * 31)).astype(np.int64)
        self._force_review[:] = False
        minute = k * 60 + offset
        volume, colloid = clin.review(idx, self.charter.view, u[:N_RANDOM, idx])
        cryst, coll = np.zeros(n), np.zeros(n)
        cryst[idx] = np.where(colloid, 0.0, volume)
        coll[idx] = np.where(colloid, volume, 0.0)
        give = volume > 0
        self.log.bolus(idx[give & ~colloid], minute[give & ~colloid], "crystalloid", volume[give & ~colloid])
        self.log.bolus(idx[give & colloid], minute[give & colloid], "colloid", volume[give & colloid])
        rates = clin.native_rates(idx)
        for channel in VASOPRESSOR_CHANNELS:
            unit = None
            if channel == "norepinephrine":
                unit = np.where(clin.ug_min[idx], RATE_UNIT["ug/min"], RATE_UNIT["ug/kg/min"])
            self.log.set_rate(channel, idx, minute, rates[channel], unit)
        self.log.set_rate("crystalloid", idx, minute, clin.orders.maintenance_ml_h[idx])
        before = np.zeros(n)
        before[idx] = offset / 60.0
        return cryst, coll, minute, before

    def step_hour(self) -> None:
        """Advance every active stay by one hour."""
        cfg, p, k, n = self.cfg, self.patients, self.hour, self.n
        u_clin = self._clin_rng.random((N_RANDOM + 2, n))
        noise = np.vstack([self._phys_rng.random((2, n)), self._phys_rng.standard_normal((2, n))])
        u_out = self._out_rng.random((5, n))
        self.charter.release_labs(k)
        orders = self.clinician.orders
        old = (orders.ne_eq(), orders.adrenergic(), orders.epinephrine(), orders.maintenance_ml_h.copy())
        cryst, coll, _, before = self._usual_care(k, u_clin)
        new = (orders.ne_eq(), orders.adrenergic(), orders.epinephrine(), orders.maintenance_ml_h)
        mean = [before * a + (1.0 - before) * b for a, b in zip(old, new, strict=True)]
        held = self.held
        doses = HourDoses(
            crystalloid_ml=np.where(held, self.held_fluid_ml_h, cryst + mean[3]),
            colloid_ml=np.where(held, 0.0, coll),
            ne_eq=np.where(held, self.held_ne, mean[0]),
            adrenergic=np.where(held, self.held_ne, mean[1]),
            epinephrine=np.where(held, 0.0, mean[2]),
        )
        for f in ("crystalloid_ml", "colloid_ml", "ne_eq", "adrenergic", "epinephrine"):
            setattr(doses, f, np.where(self.active, getattr(doses, f), 0.0))
        self.clinician.fluid_ml += doses.crystalloid_ml + doses.colloid_ml
        if k < 24:
            self.fluid_first_24h_ml += doses.crystalloid_ml + doses.colloid_ml
        self.ever_vasopressor |= doses.ne_eq > 0
        with np.errstate(over="ignore", invalid="ignore"):
            new_state, mid = step(self.state, p, doses, cfg.physiology, noise)
            hazard = death_hazard(mid, new_state, p, cfg.outcome)
        dies = self.active & (u_out[0] < hazard)
        death_min = k * 60 + 31 + np.floor(u_out[1] * 28).astype(np.int64)
        self._end(np.flatnonzero(dies), death_min, died=True)
        self.state = new_state
        now_ne = np.where(held, self.held_ne, new[0])
        end_doses = HourDoses(np.zeros(n), np.zeros(n), now_ne, np.where(held, self.held_ne, new[1]),
                              np.where(held, 0.0, new[2]))
        obs = observe(new_state, p, end_doses, cfg.physiology)
        obs.urine_ml_h = mid.urine_ml_h
        self.charter.chart(k + 1, obs, self.active, self._chart_rng)
        out = cfg.outcome
        stable = ((now_ne <= 0) & (obs.map >= 65) & (obs.lactate < 2.5) & (obs.spo2 >= 92)
                  & (new_state.inflammation < 0.3) & (new_state.injury < 1.2))
        self.stable_hours = np.where(stable, self.stable_hours + 1, 0)
        leave = self.active & (k + 1 >= out.min_stay_hours) & (self.stable_hours >= out.stable_hours)
        leave = (leave & (u_out[2] < out.discharge_rate)) | (self.active & (k + 1 >= out.max_stay_hours))
        idx = np.flatnonzero(leave)
        self._end(idx, np.full(n, (k + 1) * 60, dtype=np.int64), died=False)
        a, b, c = out.post_icu_death
        logit = a + b * organ_score(obs)[idx] + c * p.comorbidity[idx]
        later = idx[u_out[3, idx] < 1.0 / (1.0 + np.exp(-logit))]
        self.died[later] = True
        self.death_minute[later] = (k + 1) * 60 + (60 + np.floor(u_out[4, later] * 60 * 24 * 20)).astype(np.int64)
        self.hour = k + 1

    def _end(self, idx: np.ndarray, minute: np.ndarray, died: bool) -> None:
        if idx.size == 0:
            return
        self.log.stop_all(idx, minute[idx])
        self.active[idx] = False
        self.held[idx] = False
        self.end_minute[idx] = minute[idx]
        if died:
            self.died[idx] = True
            self.died_in_icu[idx] = True
            self.death_minute[idx] = minute[idx]

    # ------------------------------------------------------------------ loops
    def run_until(self, hour: int) -> None:
        """Step until `hour` (or until every stay has ended)."""
        while self.hour < hour and self.active.any():
            self.step_hour()

    def run_until_done(self, progress: Callable[[int], None] | None = None) -> None:
        """Step until every stay has ended (the cap in `OutcomeConfig.max_stay_hours` guarantees it)."""
        while self.active.any():
            self.step_hour()
            if progress is not None:
                progress(self.hour)
