"""Turn a `SepsisSimulator` into the three canonical EHR tables (CONTRACTS.md §1).

Columns and dtypes follow `clinical_mborl.ehr.tables` exactly. Rows are sorted by stay and
time; ~0.5% of measurement rows are then duplicated exactly (as real extracts hold).

>>> from clinical_mborl.simulators.sepsis.engine import SepsisSimulator
>>> sim = SepsisSimulator(5, seed=1)
>>> sim.run_until_done()
>>> sorted(build_tables(sim))
['measurements', 'stays', 'treatments']
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from clinical_mborl.ehr.tables import MEASUREMENTS, STAYS, TREATMENTS
from clinical_mborl.simulators.sepsis.charting import UNITS, VARIABLES
from clinical_mborl.simulators.sepsis.engine import SepsisSimulator
from clinical_mborl.simulators.sepsis.treatments import RATE_UNITS
from clinical_mborl.simulators.sepsis.treatments import TREATMENTS as TREATMENT_NAMES

US_PER_MIN = 60_000_000
SPREAD_DAYS = 3 * 365
TABLE_STREAM = 7
"""Spawn key of the random stream for admission dates and duplicate rows (the engine uses 0-6)."""


def stay_ids(n: int, prefix: str = "S") -> list[str]:
    """Stable string ids: S0000000, S0000001, ..."""
    return [f"{prefix}{i:07d}" for i in range(n)]


def _admission_us(sim: SepsisSimulator, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Admission time (us since epoch) per stay and the earlier stay of readmitted patients (or -1)."""
    base = int((datetime.fromisoformat(sim.cfg.start_date) - datetime(1970, 1, 1)).total_seconds()) * 1_000_000
    admit = base + np.floor(rng.random(sim.n) * SPREAD_DAYS * 1440).astype(np.int64) * US_PER_MIN
    partner = sim.patients.readmission_of.copy()
    later = np.flatnonzero(partner >= 0)
    ok = later[~sim.died[partner[later]] & sim.finished[partner[later]]]
    gap_min = np.round(sim.patients.readmission_gap_days[ok] * 1440).astype(np.int64)
    admit[ok] = admit[partner[ok]] + (sim.end_minute[partner[ok]] + gap_min) * US_PER_MIN
    partner[np.setdiff1d(later, ok)] = -1
    return admit, partner


def _datetime(us: np.ndarray) -> pl.Series:
    return pl.Series(us.astype(np.int64), dtype=pl.Int64).cast(pl.Datetime("us"))


def _stays(sim: SepsisSimulator, ids: pl.Series, admit: np.ndarray, partner: np.ndarray) -> pl.DataFrame:
    p = sim.patients
    patient = np.arange(sim.n)
    patient[partner >= 0] = partner[partner >= 0]
    end = np.where(sim.finished, sim.end_minute, sim.now_minute)
    died = sim.died & (sim.death_minute >= 0)
    death_us = np.where(died, admit + sim.death_minute * US_PER_MIN, 0)
    frame = pl.DataFrame({
        "stay_id": ids,
        "patient_id": pl.Series([f"P{i:07d}" for i in patient]),
        "admit_time": _datetime(admit),
        "discharge_time": _datetime(admit + end * US_PER_MIN),
        "age_years": np.round(p.age, 1),
        "sex": np.where(p.female, "F", "M"),
        "weight_kg": pl.Series(p.weight_recorded, dtype=pl.Float64).fill_nan(None),
        "died_in_hospital": died,
        "death_time": _datetime(death_us),
    })
    frame = frame.with_columns(pl.when(pl.col("died_in_hospital")).then(pl.col("death_time")).alias("death_time"))
    return frame.select([pl.col(c).cast(t) for c, t in STAYS.schema.items()])


def _measurements(sim: SepsisSimulator, ids: pl.Series, admit: np.ndarray, rng: np.random.Generator | None,
                  only: np.ndarray | None = None) -> pl.DataFrame:
    stay, minute, var, value, unit = sim.charter.rows()
    if only is not None:
        keep = np.isin(stay, only)
        stay, minute, var, value, unit = (a[keep] for a in (stay, minute, var, value, unit))
    order = np.lexsort((var, minute, stay))
    stay, minute, var, value, unit = (a[order] for a in (stay, minute, var, value, unit))
    if rng is not None:
        dup = np.flatnonzero(rng.random(stay.size) < sim.cfg.measurement.duplicate_share)
        take = np.sort(np.concatenate([np.arange(stay.size), dup]), kind="stable")
        stay, minute, var, value, unit = (a[take] for a in (stay, minute, var, value, unit))
    frame = pl.DataFrame({
        "stay_id": ids.gather(stay),
        "time": _datetime(admit[stay] + minute * US_PER_MIN),
        "variable": pl.Series(VARIABLES).gather(var.astype(np.int64)),
        "value": value,
        "unit": pl.Series(UNITS).gather(unit.astype(np.int64)),
    })
    return frame.select([pl.col(c).cast(t) for c, t in MEASUREMENTS.schema.items()])


def _treatments(sim: SepsisSimulator, ids: pl.Series, admit: np.ndarray) -> pl.DataFrame:
    stay, start, end, code, amount, rate, rate_unit = sim.log.rows()
    running = [(c, np.flatnonzero(sim.active & (sim.log.rate[c] > 0))) for c in sim.log.rate]
    extra = [(np.asarray(i, np.int32), sim.log.start[c][i], np.full(i.size, sim.now_minute, np.int64),
              np.full(i.size, TREATMENT_NAMES.index(c), np.int8), np.full(i.size, np.nan), sim.log.rate[c][i],
              sim.log.unit[c][i]) for c, i in running if i.size]
    if extra:  # infusions still running in a provisional (mid-simulation) snapshot end "now"
        cols = [np.concatenate([a, *[e[j] for e in extra]]) for j, a in enumerate((stay, start, end, code, amount,
                                                                                  rate, rate_unit))]
        stay, start, end, code, amount, rate, rate_unit = cols
        keep = end > start
        stay, start, end, code, amount, rate, rate_unit = (a[keep | ~np.isnan(amount)] for a in
                                                          (stay, start, end, code, amount, rate, rate_unit))
    order = np.lexsort((code, start, stay))
    stay, start, end, code, amount, rate, rate_unit = (a[order] for a in (stay, start, end, code, amount, rate,
                                                                          rate_unit))
    is_bolus = ~np.isnan(amount)
    frame = pl.DataFrame({
        "stay_id": ids.gather(stay),
        "start_time": _datetime(admit[stay] + start * US_PER_MIN),
        "end_time": _datetime(admit[stay] + end * US_PER_MIN),
        "treatment": pl.Series(TREATMENT_NAMES).gather(code.astype(np.int64)),
        "amount": pl.Series(amount, dtype=pl.Float64).fill_nan(None),
        "amount_unit": pl.Series(["mL", None]).gather(np.where(is_bolus, 0, 1)),
        "rate": pl.Series(rate, dtype=pl.Float64).fill_nan(None),
        "rate_unit": pl.Series([*RATE_UNITS, None]).gather(np.where(rate_unit < 0, len(RATE_UNITS), rate_unit)),
    })
    return frame.select([pl.col(c).cast(t) for c, t in TREATMENTS.schema.items()])


def build_tables(sim: SepsisSimulator, ids: list[str] | None = None) -> dict[str, pl.DataFrame]:
    """The canonical tables of everything simulated so far.

    Stays still running (a closed-loop snapshot) get `discharge_time` = now and their running
    infusions end now; finished simulations give the final tables.
    """
    rng = np.random.default_rng(np.random.SeedSequence(sim.seed, spawn_key=(TABLE_STREAM,)))
    admit, partner = _admission_us(sim, rng)
    id_series = pl.Series(ids if ids is not None else stay_ids(sim.n), dtype=pl.String)
    return {
        "stays": _stays(sim, id_series, admit, partner),
        "measurements": _measurements(sim, id_series, admit, rng),
        "treatments": _treatments(sim, id_series, admit),
    }


def snapshot(sim: SepsisSimulator, idx: np.ndarray, ids: list[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(stays, measurements) of the stays `idx` charted so far, as `build_tables` writes them.

    Used by the closed loop to build states at a decision time with the cohort's own code. The
    stays frame holds the columns a state needs (no discharge yet); measurements are the same
    rows, times and values the final tables will hold, minus the exact duplicates added there.
    """
    rng = np.random.default_rng(np.random.SeedSequence(sim.seed, spawn_key=(TABLE_STREAM,)))
    admit, partner = _admission_us(sim, rng)
    id_series = pl.Series(ids if ids is not None else stay_ids(sim.n), dtype=pl.String)
    stays = _stays(sim, id_series, admit, partner)[idx]
    return stays, _measurements(sim, id_series, admit, None, only=idx)
