"""Small valid canonical EHR tables for tests, and helpers to break them on purpose.

Every identifier carries the marker `MARK` and every time lies in `BASE_YEAR`, so a test can
assert that no patient value leaked into a message or a report by searching for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from clinical_mborl.ehr.tables import TABLES

MARK = "ZQX"
BASE_YEAR = 2031
SENTINEL = "SENTINEL-9731"
SENTINEL_NUMBER = 987.654
Frames = dict[str, pl.DataFrame]


def make_frames(n_stays: int = 4, meas_per_stay: int = 3, treat_per_stay: int = 2, seed: int = 0) -> Frames:
    """Random but valid `stays`, `measurements`, `treatments` frames in the contract schema."""
    rng = np.random.default_rng(seed)
    base = datetime(BASE_YEAR, 3, 1)
    stays: dict[str, list[Any]] = {c: [] for c in TABLES["stays"].columns}
    meas: dict[str, list[Any]] = {c: [] for c in TABLES["measurements"].columns}
    treat: dict[str, list[Any]] = {c: [] for c in TABLES["treatments"].columns}
    for i in range(n_stays):
        stay_id = f"stay-{MARK}-{i:04d}"
        admit = base + timedelta(days=i, minutes=int(rng.integers(0, 600)))
        los = timedelta(hours=int(rng.integers(1, 240)))
        died = bool(rng.random() < 0.3)
        stays["stay_id"].append(stay_id)
        stays["patient_id"].append(f"pt-{MARK}-{i // 2:04d}")
        stays["admit_time"].append(admit)
        stays["discharge_time"].append(admit + los)
        stays["age_years"].append(float(rng.uniform(18, 95)))
        stays["sex"].append(str(rng.choice(["F", "M", "U"])))
        stays["weight_kg"].append(None if rng.random() < 0.2 else float(rng.uniform(40, 150)))
        stays["died_in_hospital"].append(died)
        stays["death_time"].append(admit + los * float(rng.random()) if died else None)
        for j in range(meas_per_stay):
            meas["stay_id"].append(stay_id)
            meas["time"].append(admit + timedelta(minutes=7 * j + int(rng.integers(0, 7))))
            meas["variable"].append(str(rng.choice(["heart_rate", "map", "lactate"])))
            meas["value"].append(float(rng.normal(80, 20)))
            meas["unit"].append("x")
        for j in range(treat_per_stay):
            start = admit + timedelta(minutes=30 * j)
            kind = int(rng.integers(0, 3))  # 0 amount only, 1 rate only, 2 both
            treat["stay_id"].append(stay_id)
            treat["start_time"].append(start)
            treat["end_time"].append(start + timedelta(minutes=int(rng.choice([0, 60]))))
            treat["treatment"].append(str(rng.choice(["crystalloid", "norepinephrine"])))
            treat["amount"].append(float(rng.uniform(0, 500)) if kind != 1 else None)
            treat["amount_unit"].append("mL" if kind != 1 else None)
            treat["rate"].append(float(rng.uniform(0, 1)) if kind != 0 else None)
            treat["rate_unit"].append("mcg/kg/min" if kind != 0 else None)
    data = {"stays": stays, "measurements": meas, "treatments": treat}
    return {name: pl.DataFrame(cols, schema=TABLES[name].schema) for name, cols in data.items()}


def set_cells(df: pl.DataFrame, rows: Sequence[int], values: Mapping[str, Any]) -> pl.DataFrame:
    """Set `values` (a literal, None or a polars expression per column) on the given row indices.

    A text value in a non-text column turns that column into text first (as a CSV would hold it).
    """
    in_rows = pl.int_range(pl.len()).is_in(pl.Series(list(rows), dtype=pl.Int64).implode())
    exprs = []
    for col, value in values.items():
        current = pl.col(col)
        if isinstance(value, str) and df.schema[col] != pl.String:
            current = current.cast(pl.String)
        new = value if isinstance(value, pl.Expr) else pl.lit(value, dtype=None if value is not None else df.schema[col])
        exprs.append(pl.when(in_rows).then(new).otherwise(current).alias(col))
    return df.with_columns(exprs)


def append_copies(df: pl.DataFrame, rows: Sequence[int], values: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Append copies of `rows` (optionally changed by `values`) at the end of `df`."""
    copies = df[list(rows)]
    if values:
        copies = copies.with_columns(pl.lit(v, dtype=df.schema[c]).alias(c) for c, v in values.items())
    return pl.concat([df, copies])


def write_frames(folder: Path, frames: Frames, fmt: str = "parquet") -> Path:
    """Write each frame as `<name>.<fmt>` into `folder` (created) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        if fmt == "parquet":
            df.write_parquet(folder / f"{name}.parquet")
        else:
            df.write_csv(folder / f"{name}.csv")
    return folder


def leaked_values(text: str, extra: Sequence[str] = ()) -> list[str]:
    """The patient-like markers found in `text` (ids, times, sentinels); [] when clean."""
    needles = [MARK, str(BASE_YEAR), SENTINEL, str(SENTINEL_NUMBER), *extra]
    return [n for n in needles if n in text]
