"""Benchmark: validating EHR tables eagerly (`validate_folder`) versus from lazy scans.

Writes a synthetic canonical folder (`--stays` stays, `--per-stay` measurement rows each, parquet or
CSV, two treatments per stay; 7 non-finite values and 5 exact repeats, so both reports have
violations and warnings to count and locate),
then validates it in two fresh processes, one per validator, and reports wall time and peak
resident memory of each, side by side, and whether the two reports are identical.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validate_streaming.py [--stays 20000 --per-stay 1000 --format parquet]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

CHILD = """
import json, sys, time
from clinical_mborl.ehr.scan_validate import scan_validate_folder
from clinical_mborl.ehr.validate import validate_folder
fn = {"eager": validate_folder, "scan": scan_validate_folder}[sys.argv[1]]
t = time.perf_counter()
report = fn(sys.argv[2])
seconds = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
json.dump({"seconds": seconds, "peak_rss_mb": hwm / 1024,
           "report": report.model_dump()}, open(sys.argv[3], "w"))
"""


def write_folder(folder: Path, n_stays: int, per_stay: int, seed: int = 0, fmt: str = "parquet") -> int:
    rng = np.random.default_rng(seed)
    ids = np.array([f"S{i:07d}" for i in range(n_stays)])
    admit = (np.datetime64("2020-01-01T00:00") + rng.integers(0, 10**6, n_stays).astype("timedelta64[m]")
             ).astype("datetime64[us]")
    pl.DataFrame({
        "stay_id": ids, "patient_id": ids, "admit_time": admit,
        "discharge_time": admit + np.timedelta64(3 * 86400 * 10**6, "us"), "died_in_hospital": rng.random(n_stays) < 0.2,
        "death_time": None, "age_years": rng.uniform(18, 90, n_stays), "sex": rng.choice(["F", "M"], n_stays),
        "weight_kg": rng.uniform(50, 120, n_stays),
    }).with_columns(pl.when(pl.col("died_in_hospital")).then(pl.col("discharge_time")).otherwise(None)
                    .alias("death_time")).write_parquet(folder / "stays.parquet")
    n = n_stays * per_stay
    stay = np.repeat(np.arange(n_stays), per_stay)
    variables = np.array(["map", "heart_rate", "spo2", "lactate", "creatinine"])
    value = rng.normal(80, 15, n)
    value[rng.choice(n, 7, replace=False)] = np.nan  # non_finite
    measurements = pl.DataFrame({
        "stay_id": ids[stay], "time": admit[stay] + (rng.integers(0, 4320, n) * 60 * 10**6).astype("timedelta64[us]"),
        "variable": variables[rng.integers(0, 5, n)], "value": value, "unit": "mmHg",
    })
    measurements = pl.concat([measurements, measurements[rng.choice(n, 5, replace=False)]])  # 5 exact repeats
    if fmt == "csv":
        measurements.write_csv(folder / "measurements.csv")
    else:
        measurements.write_parquet(folder / "measurements.parquet", row_group_size=1_000_000)
    k = 2 * n_stays
    start = admit[np.repeat(np.arange(n_stays), 2)] + (rng.integers(0, 4000, k) * 60 * 10**6).astype("timedelta64[us]")
    pl.DataFrame({
        "stay_id": ids[np.repeat(np.arange(n_stays), 2)], "treatment": "crystalloid", "start_time": start,
        "end_time": start + np.timedelta64(30 * 60 * 10**6, "us"), "amount": rng.uniform(100, 1000, k), "amount_unit": "mL",
        "rate": None, "rate_unit": None,
    }, schema_overrides={"rate": pl.Float64, "rate_unit": pl.String}).write_parquet(folder / "treatments.parquet")
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stays", type=int, default=20000)
    p.add_argument("--per-stay", type=int, default=1000)
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="Of the measurements table.")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ehr"
        folder.mkdir()
        t = time.perf_counter()
        rows = write_folder(folder, a.stays, a.per_stay, fmt=a.format)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
        print(f"{rows:,} measurement rows (+5 exact repeats), {size:.0f} MiB, measurements as {a.format}, "
              f"written in {time.perf_counter() - t:.0f} s")
        out = {}
        for kind in ("eager", "scan"):
            path = Path(tmp) / f"{kind}.json"
            subprocess.run([sys.executable, "-c", CHILD, kind, str(folder), str(path)], check=True)
            out[kind] = json.loads(path.read_text())
    e, s = out["eager"], out["scan"]
    print("| validator | wall s | peak RSS MiB |\n|---|---|---|")
    for kind in ("eager", "scan"):
        print(f"| {kind} | {out[kind]['seconds']:.1f} | {out[kind]['peak_rss_mb']:.0f} |")
    print(f"ratio scan/eager: time {s['seconds'] / e['seconds']:.2f}, memory {s['peak_rss_mb'] / e['peak_rss_mb']:.2f}; "
          f"reports identical: {e['report'] == s['report']}; violations {[v['reason'] for v in s['report']['violations']]}")


if __name__ == "__main__":
    main()
