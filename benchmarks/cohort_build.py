"""Benchmark: `build_cohort` (polars) against a plain pandas implementation of the same transform.

For each size (measurement rows, default 10^6 and 10^7) it writes synthetic canonical tables
(`synthetic_ehr` below), then runs each implementation in its own subprocess (so peak memories do
not mix; peak = `ru_maxrss` of that process) and prints wall time of the transform (read,
transform, write; best of `--repeat` alternating runs, as the machine is shared), measurement
rows per second, peak memory (max over runs) and the pandas/polars time ratio.
At the smallest size it checks that both give the same states, next states and doses.
Targets (issue 2): >= 5x the pandas reference and < 4 GB peak at 10^7 rows on 2 cores.

    .venv/bin/python benchmarks/cohort_build.py                 # 10^6 and 10^7
    .venv/bin/python benchmarks/cohort_build.py --sizes 1000000 --validate
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "cohorts" / "sepsis_fluids_vasopressors.yaml"

# ----------------------------------------------------------------------------- synthetic tables

ROWS_PER_STAY = 500
HOUR_US = 3_600_000_000
# variable: (share of rows, mean, sd, unit, alternative unit, share in it, factor into it)
VARIABLES = {
    "map": (0.16, 75, 14, "mmHg", None, 0.0, 1.0),
    "heart_rate": (0.16, 95, 18, "bpm", None, 0.0, 1.0),
    "spo2": (0.14, 95, 3, "%", None, 0.0, 1.0),
    "resp_rate": (0.12, 21, 6, "/min", None, 0.0, 1.0),
    "temperature": (0.08, 37.3, 0.9, "degC", "degF", 0.15, -1.0),
    "lactate": (0.04, 2.4, 1.5, "mmol/L", "mg/dL", 0.2, 9.009009),
    "creatinine": (0.03, 1.5, 0.9, "mg/dL", "umol/L", 0.2, 88.4),
    "bilirubin": (0.02, 1.2, 1.0, "mg/dL", None, 0.0, 1.0),
    "platelets": (0.02, 200, 90, "10^9/L", "K/uL", 0.3, 1.0),
    "wbc": (0.02, 12, 6, "10^9/L", "K/uL", 0.3, 1.0),
    "gcs": (0.06, 12, 3, "points", None, 0.0, 1.0),
    "urine_output": (0.10, 80, 60, "mL", None, 0.0, 1.0),
    "sodium": (0.05, 139, 4, "mmol/L", None, 0.0, 1.0),  # not in the spec
}


def synthetic_ehr(n_measurements: int, seed: int = 0, rows_per_stay: int = ROWS_PER_STAY) -> dict[str, pl.DataFrame]:
    """Stays, measurements (exactly `n_measurements` rows) and treatments (~1/10 of that).

    Plausible (not physiological) values for the variables and treatments of the sepsis spec,
    with what real extracts have: mixed units (degF, mg/dL lactate, umol/L creatinine, ug/min
    vasopressors, L fluids), out-of-range values, exact duplicates, variables and treatments the
    spec does not read, charting before admission and after discharge, missing weights, minors.

    >>> synthetic_ehr(n_measurements=2_000, seed=0)["measurements"].height
    2000
    """
    rng = np.random.default_rng(seed)
    n_stays = max(1, n_measurements // rows_per_stay)
    stays, admit, end = _stays(rng, n_stays)
    return {"stays": stays, "measurements": _measurements(rng, n_measurements, admit, end, stays["stay_id"]),
            "treatments": _treatments(rng, max(1, n_measurements // 10), admit, end, stays["stay_id"])}


def _stays(rng: np.random.Generator, n: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    base = int(dt.datetime(2019, 1, 1).timestamp()) * 1_000_000
    admit = base + rng.integers(0, 365 * 24, n) * HOUR_US + rng.integers(0, HOUR_US, n)
    los = np.exp(rng.normal(np.log(50), 0.8, n)) * HOUR_US
    discharge = admit + los.astype(np.int64)
    died = rng.random(n) < 0.18
    later = rng.random(n) < 0.3  # some die on the ward after ICU discharge
    death = np.where(later, discharge + rng.integers(1, 200, n) * HOUR_US, discharge)
    weight = rng.normal(80, 18, n).clip(35, 200)
    weight_null = rng.random(n) < 0.05
    stays = pl.DataFrame({
        "stay_id": [f"S{i:07d}" for i in range(n)],
        "patient_id": [f"P{i // 2 + (i % 7 == 0):07d}" for i in range(n)],  # some patients have 2 stays
        "admit_time": pl.Series(admit).cast(pl.Datetime("us")),
        "discharge_time": pl.Series(discharge).cast(pl.Datetime("us")),
        "age_years": np.where(rng.random(n) < 0.02, rng.uniform(10, 17, n), rng.uniform(18, 95, n)),
        "sex": rng.choice(["F", "M", "U"], n, p=[0.44, 0.54, 0.02]),
        "weight_kg": pl.Series(np.where(weight_null, np.nan, weight)).fill_nan(None),
        "died_in_hospital": died,
        "death_time": pl.Series(np.where(died, death, 0)).cast(pl.Datetime("us")),
    })
    stays = stays.with_columns(
        pl.when(pl.col("died_in_hospital")).then(pl.col("death_time")).otherwise(None).alias("death_time")
    )
    return stays, admit, discharge


def _measurements(rng: np.random.Generator, n: int, admit: np.ndarray, end: np.ndarray, ids: pl.Series) -> pl.DataFrame:
    names = list(VARIABLES)
    share = np.array([v[0] for v in VARIABLES.values()])
    var = rng.choice(len(names), n, p=share / share.sum())
    stay = np.sort(rng.integers(0, len(admit), n))
    span = (end[stay] - admit[stay] + 14 * HOUR_US).astype(np.float64)
    time = admit[stay] - 12 * HOUR_US + (rng.random(n) * span).astype(np.int64)
    time = (time // 60_000_000) * 60_000_000  # charted to the minute
    mean = np.array([v[1] for v in VARIABLES.values()])[var]
    sd = np.array([v[2] for v in VARIABLES.values()])[var]
    value = np.abs(rng.normal(mean, sd))
    unit = np.array([v[3] for v in VARIABLES.values()], dtype=object)[var]
    alt_share = np.array([v[5] for v in VARIABLES.values()])[var]
    use_alt = rng.random(n) < alt_share
    alt_unit = np.array([v[4] or "" for v in VARIABLES.values()], dtype=object)[var]
    factor = np.array([v[6] for v in VARIABLES.values()])[var]
    value = np.where(use_alt & (factor > 0), value * factor, value)
    value = np.where(use_alt & (factor < 0), value * 9 / 5 + 32, value)  # degC -> degF
    unit = np.where(use_alt, alt_unit, unit)
    value = np.where(rng.random(n) < 0.005, value * 40 + 1000, value).round(2)  # charting errors
    frame = pl.DataFrame({"stay_id": ids.gather(stay), "time": pl.Series(time).cast(pl.Datetime("us")),
                          "variable": np.array(names, dtype=object)[var], "value": value,
                          "unit": unit.astype(str)})
    dup = rng.random(n) < 0.005  # exact duplicates replace the next row
    src = np.flatnonzero(dup[:-1])
    idx = np.arange(n)
    idx[src + 1] = src
    return frame[idx]


def _treatments(rng: np.random.Generator, n: int, admit: np.ndarray, end: np.ndarray, ids: pl.Series) -> pl.DataFrame:
    kinds = ["crystalloid_bolus", "crystalloid_rate", "colloid", "norepinephrine", "norepinephrine_ugmin",
             "vasopressin", "epinephrine", "insulin"]
    p = np.array([0.3, 0.2, 0.05, 0.25, 0.05, 0.05, 0.04, 0.06])
    kind = rng.choice(len(kinds), n, p=p)
    stay = np.sort(rng.integers(0, len(admit), n))
    start = admit[stay] + (rng.random(n) * (end[stay] - admit[stay] + HOUR_US)).astype(np.int64)
    duration = (rng.exponential(3, n) * HOUR_US).astype(np.int64)
    bolus = kind == 0
    stop = np.where(bolus, start, start + duration)
    amount = np.where(bolus, rng.choice([250.0, 500.0, 1000.0], n), np.nan)
    amount = np.where(kind == 2, rng.choice([100.0, 250.0], n), amount)
    amount_unit = np.where(np.isnan(amount), None, np.where(rng.random(n) < 0.1, "L", "mL"))
    amount = np.where(amount_unit == "L", amount / 1000, amount)
    rate = np.select(
        [kind == 1, kind == 3, kind == 4, kind == 5, kind == 6, kind == 7],
        [rng.uniform(50, 250, n), rng.gamma(2, 0.08, n), rng.gamma(2, 5, n), np.full(n, 0.04),
         rng.gamma(2, 0.05, n), rng.uniform(1, 10, n)], np.nan).round(4)
    rate_unit = np.select([kind == 1, kind == 3, kind == 4, kind == 5, kind == 6, kind == 7],
                          ["mL/h", "ug/kg/min", "ug/min", "units/min", "ug/kg/min", "units/h"], "")
    name = np.array(["crystalloid", "crystalloid", "colloid", "norepinephrine", "norepinephrine",
                     "vasopressin", "epinephrine", "insulin"], dtype=object)[kind]
    return pl.DataFrame({
        "stay_id": ids.gather(stay),
        "start_time": pl.Series(start).cast(pl.Datetime("us")),
        "end_time": pl.Series(stop).cast(pl.Datetime("us")),
        "treatment": name.astype(str),
        "amount": pl.Series(amount).fill_nan(None),
        "amount_unit": pl.Series(amount_unit.tolist(), dtype=pl.String),
        "rate": pl.Series(rate).fill_nan(None),
        "rate_unit": pl.Series(np.where(np.isnan(rate), None, rate_unit).tolist(), dtype=pl.String),
    })


def write_synthetic_ehr(folder: str | Path, n_measurements: int, seed: int = 0) -> dict[str, int]:
    """Write the three tables as parquet into `folder`; return their row counts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = synthetic_ehr(n_measurements, seed)
    for name, df in tables.items():
        df.write_parquet(folder / f"{name}.parquet")
    return {name: df.height for name, df in tables.items()}


# ----------------------------------------------------------------------------- measurement


def run_one(impl: str, ehr: Path, out: Path, validate: bool) -> dict[str, float]:
    """Inside the subprocess: run one implementation and report time and peak memory."""
    sys.path.insert(0, str(HERE))
    from clinical_mborl.cohort import load_cohort_spec

    spec = load_cohort_spec(SPEC)
    start = time.perf_counter()
    if impl == "polars":
        from clinical_mborl.cohort.build import build_cohort

        build_cohort(spec, ehr, out, progress=False, validate=validate)
    else:
        from pandas_reference import pandas_transitions

        out.mkdir(parents=True, exist_ok=True)
        pandas_transitions(spec, ehr).to_parquet(out / "transitions.parquet")
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb}


def measure(impl: str, ehr: Path, out: Path, validate: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--run", impl, "--ehr", str(ehr), "--out", str(out)]
    if validate:
        cmd.append("--validate")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(polars_dir: Path, pandas_dir: Path) -> str:
    """States and next states must agree (missing indicator <-> NaN); doses where weight is known."""
    from clinical_mborl.cohort import load_cohort_spec

    spec = load_cohort_spec(SPEC)
    a = pl.read_parquet(polars_dir / "transitions.parquet").sort("stay_id", "step")
    b = pl.read_parquet(pandas_dir / "transitions.parquet").sort("stay_id", "step")
    assert a.select("stay_id", "step").equals(b.select("stay_id", "step")), "different transitions"
    worst = 0.0
    for prefix in ("", "next_"):
        for f in spec.features:
            missing = a[prefix + f.name + "_missing"].to_numpy() == 1.0
            ref = b[prefix + f.name].to_numpy().astype(np.float64)
            assert (np.isnan(ref) == missing).all(), f"missingness differs for {prefix}{f.name}"
            got = a[prefix + f.name].to_numpy()[~missing]
            np.testing.assert_allclose(got, ref[~missing], rtol=1e-9, atol=1e-9, err_msg=prefix + f.name)
            worst = max(worst, float(np.max(np.abs(got - ref[~missing]), initial=0.0)))
    known = (a["weight_kg_missing"] == 0.0).to_numpy()  # the reference fills weights differently
    for dim in spec.actions:
        np.testing.assert_allclose(a[dim.name].to_numpy()[known], b[dim.name].to_numpy()[known], rtol=1e-9, atol=1e-9)
    for flag in ("done", "truncated"):
        assert a[flag].equals(b[flag]), flag
    return f"agree on {a.height} transitions (states, next states, doses, flags; max |diff| {worst:.1e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--validate", action="store_true", help="polars: run the EHR validator too")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs per implementation, alternating; the best run is reported (shared machines)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--run", choices=["polars", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--ehr", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run, args.ehr, args.out, args.validate)))
        return
    root = args.workdir or Path(tempfile.mkdtemp(prefix="cohort_bench_"))
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()}, polars {pl.__version__}")
    print(f"{'rows':>11} {'impl':<7} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}")
    for size in sorted(args.sizes):
        ehr = root / f"ehr_{size}"
        counts = write_synthetic_ehr(ehr, size, seed=size % 9973)
        results: dict[str, list[dict[str, float]]] = {"polars": [], "pandas": []}
        for _ in range(max(1, args.repeat)):
            for impl in results:
                validate = args.validate and impl == "polars"
                results[impl].append(measure(impl, ehr, root / f"{impl}_{size}", validate))
        for impl, runs in results.items():
            best = min(r["seconds"] for r in runs)
            peak = max(r["peak_mb"] for r in runs)
            all_runs = ", ".join(f"{r['seconds']:.1f}" for r in runs)
            print(f"{size:>11,} {impl:<7} {best:>8.2f} {size / best:>12,.0f} {peak:>8.0f}   (runs: {all_runs} s)")
        best = {impl: min(r["seconds"] for r in runs) for impl, runs in results.items()}
        ratio = best["pandas"] / best["polars"]
        print(f"{'':>11} speed-up pandas/polars: {ratio:.1f}x   ({counts['stays']:,} stays, "
              f"{counts['treatments']:,} treatment rows); load average now {os.getloadavg()}")
        if size == min(args.sizes):
            print(f"{'':>11} check: {compare(root / f'polars_{size}', root / f'pandas_{size}')}")


if __name__ == "__main__":
    main()
