"""Small cohort specs, hypothesis strategies for canonical EHR tables, and pure-Python oracles.

The oracles re-implement the cohort rules row by row (no polars), so the tests compare two
independent implementations: state at a decision time, dose per step, first failing criterion.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import strategies as st

from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.ehr.tables import MEASUREMENTS, STAYS, TREATMENTS

BASE = dt.datetime(2021, 3, 1)
US = 1_000_000
HOUR = 3600 * US


def small_spec(zero_fill: bool = False, **overrides: Any) -> CohortSpec:
    """2-hour steps, 0..10 h window, 4 h lookback; every aggregation kind; two dose dimensions."""
    fill = "zero" if zero_fill else "train_median"
    raw: dict[str, Any] = {
        "name": "test_cohort",
        "description": "test cohort",
        "time": {"step_hours": 2.0, "window_start_hours": 0.0, "window_end_hours": 10.0, "lookback_hours": 4.0},
        "criteria": {"min_age_years": 18.0, "min_stay_hours": 1.0, "require_features": ["map_mmhg"]},
        "features": [
            {"name": "map_mmhg", "source": "map", "aliases": ["abp_mean"], "unit": "mmHg",
             "valid_range": [10, 250], "aggregation": "mean", "max_carry_hours": 3.0, "fill": "zero"},
            {"name": "lactate_mmol_l", "source": "lactate", "unit": "mmol/L",
             "conversions": {"mg/dL": {"factor": 0.111}}, "valid_range": [0.1, 30], "aggregation": "last",
             "max_carry_hours": 5.0, "fill": fill, "transform": "log_zscore"},
            {"name": "urine_ml", "source": "urine", "unit": "mL", "valid_range": [0, 2000],
             "aggregation": "sum", "max_carry_hours": 0.0, "fill": "zero"},
            {"name": "gcs_points", "source": "gcs", "unit": "points", "valid_range": [3, 15],
             "aggregation": "min", "max_carry_hours": 4.0, "fill": "zero", "missing_indicator": False},
            {"name": "hr_max_bpm", "source": "heart_rate", "unit": "bpm", "valid_range": [20, 300],
             "aggregation": "max", "max_carry_hours": 2.5, "fill": "zero"},
            {"name": "temp_count", "source": "temperature", "unit": "degC",
             "conversions": {"degF": {"factor": 5 / 9, "offset": -160 / 9}}, "valid_range": [25, 45],
             "aggregation": "count", "max_carry_hours": 0.0, "fill": "zero"},
        ],
        "static_features": [{"name": "age_years"}, {"name": "sex_female", "transform": "none"},
                            {"name": "weight_kg", "missing_indicator": True}],
        "actions": [
            {"name": "fluid_ml", "treatments": {"crystalloid": 1.0, "colloid": 1.5}, "aggregation": "amount_sum",
             "unit": "mL", "conversions": {"L": {"factor": 1000.0}}, "binning": "edges", "edges": [100.0, 500.0]},
            {"name": "pressor_ug_kg_min", "treatments": {"norepinephrine": 1.0, "vasopressin": 2.5},
             "aggregation": "max_rate", "unit": "ug/kg/min", "conversions": {"units/min": {"factor": 1.0}},
             "per_kg_units": ["ug/min"], "binning": "edges", "edges": [0.1]},
        ],
        "reward": {"intermediate": [{"feature": "lactate_mmol_l", "kind": "delta", "weight": -0.1},
                                    {"feature": "map_mmhg", "kind": "below", "threshold": 65, "weight": -0.05}]},
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 3},
    }
    raw.update(overrides)
    return CohortSpec.model_validate(raw)


# ----------------------------------------------------------------------------- tables

def frames(stays: list[dict], measurements: list[dict], treatments: list[dict]) -> dict[str, pl.DataFrame]:
    return {
        "stays": pl.DataFrame(stays, schema=STAYS.schema),
        "measurements": pl.DataFrame(measurements, schema=MEASUREMENTS.schema),
        "treatments": pl.DataFrame(treatments, schema=TREATMENTS.schema),
    }


def write_tables(tables: dict[str, pl.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.write_parquet(folder / f"{name}.parquet")
    return folder


def stay(i: int, admit_min: int, los_min: int, *, patient: int | None = None, died: bool = False,
         death_min: int | None = None, age: float = 60.0, sex: str = "M", weight: float | None = 80.0) -> dict:
    admit = BASE + dt.timedelta(minutes=admit_min)
    return {
        "stay_id": f"s{i:03d}", "patient_id": f"p{(i if patient is None else patient):03d}",
        "admit_time": admit, "discharge_time": admit + dt.timedelta(minutes=los_min), "age_years": age,
        "sex": sex, "weight_kg": weight, "died_in_hospital": died,
        "death_time": admit + dt.timedelta(minutes=death_min if death_min is not None else los_min) if died else None,
    }


def meas(stay_id: str, time: dt.datetime, variable: str, value: float, unit: str) -> dict:
    return {"stay_id": stay_id, "time": time, "variable": variable, "value": value, "unit": unit}


def treat(stay_id: str, start: dt.datetime, minutes: int, treatment: str, amount: float | None = None,
          amount_unit: str | None = None, rate: float | None = None, rate_unit: str | None = None) -> dict:
    return {"stay_id": stay_id, "start_time": start, "end_time": start + dt.timedelta(minutes=minutes),
            "treatment": treatment, "amount": amount, "amount_unit": amount_unit, "rate": rate, "rate_unit": rate_unit}


MEAS_CHOICES = {
    "map": ([5.0, 55.0, 60.0, 70.0, 80.0, 300.0], ["mmHg"]),
    "abp_mean": ([62.0, 90.0], ["mmHg"]),
    "lactate": ([0.05, 1.0, 2.0, 4.5, 18.0], ["mmol/L", "mg/dL"]),
    "urine": ([0.0, 50.0, 120.0, 3000.0], ["mL"]),
    "gcs": ([3.0, 9.0, 15.0, 20.0], ["points"]),
    "heart_rate": ([10.0, 80.0, 120.0], ["bpm"]),
    "temperature": ([37.0, 99.5, 101.0], ["degC", "degF"]),
    "sodium": ([140.0], ["mmol/L"]),
}
TREAT_CHOICES = [
    ("crystalloid", {"amount": 250.0, "amount_unit": "mL"}),
    ("crystalloid", {"amount": 1.0, "amount_unit": "L"}),
    ("crystalloid", {"rate": 100.0, "rate_unit": "mL/h"}),
    ("colloid", {"amount": 200.0, "amount_unit": "mL"}),
    ("norepinephrine", {"rate": 0.08, "rate_unit": "ug/kg/min"}),
    ("norepinephrine", {"rate": 12.0, "rate_unit": "ug/min"}),
    ("vasopressin", {"rate": 0.04, "rate_unit": "units/min"}),
    ("insulin", {"rate": 2.0, "rate_unit": "units/h"}),
]


@st.composite
def ehr_tables(draw: st.DrawFn, max_stays: int = 5, max_rows: int = 40) -> dict[str, pl.DataFrame]:
    """Random small canonical tables: shared patients, deaths after discharge, charting on
    decision boundaries, ties, duplicates, out-of-range values, other units and unknown names."""
    n = draw(st.integers(1, max_stays))
    stays = []
    for i in range(n):
        los = draw(st.integers(0, 16 * 60))
        died = draw(st.booleans())
        stays.append(stay(
            i, draw(st.integers(0, 3000)), los, patient=draw(st.integers(0, max(0, n - 2))), died=died,
            death_min=draw(st.integers(0, los + 300)) if died else None,
            age=draw(st.sampled_from([12.0, 45.0, 62.0, 80.0])), sex=draw(st.sampled_from(["F", "M", "U"])),
            weight=draw(st.sampled_from([55.0, 90.0])),  # missing weights: see test_build_outputs
        ))
    minute = st.one_of(st.integers(-7 * 60, 17 * 60), st.integers(-4, 9).map(lambda h: h * 120))
    rows = []
    for s in stays:  # one valid lactate per stay before admission: train medians always exist
        rows.append(meas(s["stay_id"], s["admit_time"] - dt.timedelta(minutes=60), "lactate", 1.5, "mmol/L"))
        if draw(st.integers(0, 4)):  # most stays have a MAP near admission (a required feature)
            rows.append(meas(s["stay_id"], s["admit_time"] + dt.timedelta(minutes=draw(st.integers(-180, 120))),
                             "map", draw(st.sampled_from([58.0, 75.0])), "mmHg"))
    for _ in range(draw(st.integers(0, max_rows))):
        s = stays[draw(st.integers(0, n - 1))]
        var = draw(st.sampled_from(sorted(MEAS_CHOICES)))
        values, units = MEAS_CHOICES[var]
        rows.append(meas(s["stay_id"], s["admit_time"] + dt.timedelta(minutes=draw(minute)), var,
                         draw(st.sampled_from(values)), draw(st.sampled_from(units))))
    rows += [dict(r) for r in draw(st.lists(st.sampled_from(rows), max_size=3))]  # exact duplicates
    treatments = []
    for _ in range(draw(st.integers(0, max_rows // 3))):
        s = stays[draw(st.integers(0, n - 1))]
        name, dose = draw(st.sampled_from(TREAT_CHOICES))
        duration = 0 if "amount" in dose and draw(st.booleans()) else draw(st.integers(1, 400))
        start = s["admit_time"] + dt.timedelta(minutes=draw(minute))
        treatments.append(treat(s["stay_id"], start, duration, name, **dose))
    return frames(stays, rows, treatments)
