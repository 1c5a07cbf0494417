"""Measurement process: what nurses and the laboratory chart, with noise, gaps, units and slips.

Vitals of the state reached at the end of hour k are charted 1-20 minutes before the hour mark
(so a decision at hour k sees them); each vital is skipped with some probability, urine output
is the volume since the last charting. Labs are drawn on a per-stay routine (every 6-24 h),
lactate is repeated every 2-5 h while above 2 mmol/L, and results reach the clinician one hour
after the draw. Some rows use other units (degF, lactate mg/dL, creatinine umol/L), a few are
transducer artefacts, and ~0.5% are exact duplicates (added when the tables are written).

Random numbers are drawn in fixed-size blocks per hour for every patient, whether charted or
not, so runs that differ only in treatment share the same measurement noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinical_mborl.simulators.sepsis.config import MeasurementConfig
from clinical_mborl.simulators.sepsis.physiology import Observables

VARIABLES = ("map", "heart_rate", "spo2", "resp_rate", "temperature", "gcs", "urine_output",
             "lactate", "creatinine", "bilirubin", "platelets", "wbc")
UNITS = ("mmHg", "bpm", "%", "/min", "degC", "points", "mL", "mmol/L", "mg/dL", "mg/dL", "10^9/L",
         "10^9/L", "degF", "umol/L")
VAR = {v: i for i, v in enumerate(VARIABLES)}
UNIT = {u: i for i, u in enumerate(UNITS)}
VITALS = ("map", "heart_rate", "spo2", "resp_rate", "temperature", "gcs")
LABS = ("lactate", "creatinine", "bilirubin", "platelets", "wbc")
LACTATE_MGDL_PER_MMOL = 1.0 / 0.111
CREATININE_UMOL_PER_MGDL = 88.4
_BLOCK = 3 * len(VITALS) + 3 + 2 * len(LABS) + 3


@dataclass
class ChartView:
    """What the bedside clinician knows: the latest charted values (NaN when never charted)."""

    map_last: np.ndarray
    map_prev: np.ndarray
    spo2_last: np.ndarray
    lactate_seen: np.ndarray
    lactate_pending: np.ndarray
    lactate_ready_hour: np.ndarray
    urine_rate: np.ndarray  # mL/h over the interval since the previous urine charting

    @classmethod
    def empty(cls, n: int) -> ChartView:
        nan = np.full(n, np.nan)
        return cls(nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy(), np.full(n, np.inf), nan.copy())


class Charter:
    """Collects measurement rows (column buffers) and keeps the clinician's `ChartView`."""

    def __init__(self, n: int, cfg: MeasurementConfig, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.n = n
        self.view = ChartView.empty(n)
        self._rows: list[tuple[np.ndarray, ...]] = []
        self.lab_interval = rng.choice(np.asarray(cfg.lab_intervals_h), size=n, p=[0.15, 0.25, 0.35, 0.25])
        self.lactate_mgdl = rng.random(n) < cfg.lactate_mgdl_share
        self.creatinine_umol = rng.random(n) < cfg.creatinine_umol_share
        self.next_lab = self.lab_interval.astype(np.float64)
        self.next_lactate = np.full(n, np.inf)
        self.urine_acc = np.zeros(n)
        self.urine_hours = np.zeros(n)

    # ------------------------------------------------------------------ rows
    def _add(self, idx: np.ndarray, minute: np.ndarray, var: str, value: np.ndarray, unit: np.ndarray | int) -> None:
        if idx.size == 0:
            return
        unit_arr = np.broadcast_to(np.asarray(unit, dtype=np.int8), idx.shape).copy()
        self._rows.append((idx.astype(np.int32), minute.astype(np.int64), np.full(idx.size, VAR[var], np.int8),
                           value.astype(np.float64), unit_arr))

    def rows(self) -> tuple[np.ndarray, ...]:
        """(stay index, minute since admission, variable code, value, unit code), in charting order."""
        if not self._rows:
            return (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0), np.zeros(0, np.int8))
        return tuple(np.concatenate(c) for c in zip(*self._rows, strict=True))

    # ------------------------------------------------------------------ formatting
    def _vital_value(self, var: str, true: np.ndarray, z: np.ndarray) -> np.ndarray:
        sd = self.cfg.vital_noise[var]
        if var == "spo2":
            return np.clip(np.round(true + sd * z), 50.0, 100.0)
        if var == "temperature":
            return np.round(true + sd * z, 1)
        if var == "gcs":
            return np.clip(np.round(true + sd * z), 3.0, 15.0)
        return np.round(np.clip(true + sd * z, 1.0, None))

    def _lab(self, var: str, idx: np.ndarray, minute: np.ndarray, true: np.ndarray, z: np.ndarray) -> None:
        val = true * np.exp(self.cfg.lab_noise[var] * z)
        if var == "lactate":
            mgdl = self.lactate_mgdl[idx]
            shown = np.where(mgdl, np.round(val * LACTATE_MGDL_PER_MMOL), np.round(val, 1))
            self._add(idx, minute, var, shown, np.where(mgdl, UNIT["mg/dL"], UNIT["mmol/L"]))
        elif var == "creatinine":
            um = self.creatinine_umol[idx]
            shown = np.where(um, np.round(val * CREATININE_UMOL_PER_MGDL), np.round(val, 2))
            self._add(idx, minute, var, shown, np.where(um, UNIT["umol/L"], UNIT["mg/dL"]))
        else:
            digits = 0 if var == "platelets" else 1
            unit = UNIT["mg/dL"] if var == "bilirubin" else UNIT["10^9/L"]
            self._add(idx, minute, var, np.round(val, digits), unit)

    # ------------------------------------------------------------------ charting
    def chart(self, hour: int, obs: Observables, alive: np.ndarray, rng: np.random.Generator,
              admission: bool = False) -> None:
        """Chart the state reached at `hour` (minutes before the hour mark) for `alive` patients."""
        cfg = self.cfg
        n = self.n
        block = rng.random((_BLOCK, n))
        normal = rng.standard_normal((len(VITALS) + len(LABS) + 1, n))
        if admission:
            lo, hi = cfg.pre_admission_minutes
            offset = lo + np.floor(block[0] * (hi - lo + 1))
        else:
            offset = 1 + np.floor(block[0] * 20)
        minute = hour * 60 - offset
        row = 1
        for j, var in enumerate(VITALS):
            prob = 0.95 if admission else cfg.vital_probability[var]
            take = alive & (block[row] < prob)
            idx = np.flatnonzero(take)
            true = getattr(obs, var)[idx]
            value = self._vital_value(var, true, normal[j, idx])
            unit: np.ndarray | int = UNIT[("mmHg", "bpm", "%", "/min", "degC", "points")[j]]
            if var == "temperature":
                fahr = block[row + 1, idx] < cfg.fahrenheit_share
                value = np.where(fahr, np.round(value * 9.0 / 5.0 + 32.0, 1), value)
                unit = np.where(fahr, UNIT["degF"], UNIT["degC"])
            if var in ("map", "heart_rate"):
                art = block[row + 2, idx] < cfg.artefact_share
                value = np.where(art, np.where(block[row + 1, idx] < 0.5, 0.0, 300.0), value)
            self._add(idx, minute[idx], var, value, unit)
            if var == "map":
                self.view.map_prev[idx] = self.view.map_last[idx]
                self.view.map_last[idx] = value
            elif var == "spo2":
                self.view.spo2_last[idx] = value
            row += 3
        if not admission:
            self._chart_urine(minute, obs, alive, block[row], normal[len(VITALS)])
        row += 3
        self._chart_labs(hour, minute, obs, alive, block[row:], normal[len(VITALS) + 1:], admission)

    def _chart_urine(self, minute: np.ndarray, obs: Observables, alive: np.ndarray, u: np.ndarray,
                     z: np.ndarray) -> None:
        self.urine_acc += np.where(alive, obs.urine_ml_h, 0.0)
        self.urine_hours += alive
        take = alive & (u < self.cfg.vital_probability["urine_output"])
        idx = np.flatnonzero(take)
        vol = np.clip(np.round(self.urine_acc[idx] * np.exp(self.cfg.vital_noise["urine_output"] * z[idx]) / 5.0) * 5.0,
                      0.0, None)
        self._add(idx, minute[idx], "urine_output", vol, UNIT["mL"])
        self.view.urine_rate[idx] = vol / np.maximum(self.urine_hours[idx], 1.0)
        self.urine_acc[idx] = 0.0
        self.urine_hours[idx] = 0.0

    def _chart_labs(self, hour: int, minute: np.ndarray, obs: Observables, alive: np.ndarray,
                    block: np.ndarray, z: np.ndarray, admission: bool) -> None:
        cfg = self.cfg
        routine = alive & ((hour >= self.next_lab) | admission)
        for j, var in enumerate(LABS):
            due = routine & (block[j] < (0.9 if var == "lactate" else 0.97))
            if var == "lactate":
                due |= alive & (hour >= self.next_lactate)
            idx = np.flatnonzero(due)
            self._lab(var, idx, minute[idx], getattr(obs, var)[idx], z[j, idx])
            if var == "lactate" and idx.size:
                seen = obs.lactate[idx] * np.exp(cfg.lab_noise["lactate"] * z[j, idx])
                self.view.lactate_pending[idx] = np.round(seen, 1)
                self.view.lactate_ready_hour[idx] = hour + cfg.lab_result_delay_h
                lo, hi = cfg.lactate_repeat_h
                repeat = hour + lo + np.floor(block[len(LABS), idx] * (hi - lo + 1))
                self.next_lactate[idx] = np.where(seen > 2.0, repeat, np.inf)
        self.next_lab = np.where(routine, hour + self.lab_interval, self.next_lab)

    def release_labs(self, hour: int) -> None:
        """Lab results whose turnaround has passed become visible to the clinician."""
        ready = self.view.lactate_ready_hour <= hour
        self.view.lactate_seen = np.where(ready, self.view.lactate_pending, self.view.lactate_seen)
        self.view.lactate_ready_hour = np.where(ready, np.inf, self.view.lactate_ready_hour)
