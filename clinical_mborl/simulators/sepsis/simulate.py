"""`simulate_sepsis`: simulate N stays under usual care and write the canonical EHR tables.

Output folder: `stays.parquet`, `measurements.parquet`, `treatments.parquet` (CONTRACTS.md §1)
and `simulation.json` (config, seed, package version, file hashes, summary). Each file is
written atomically; `simulation.json` is written last. The same seed gives byte-identical files.

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> simulate_sepsis(30, seed=0, out_dir=out).n_stays
30
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from clinical_mborl import __version__
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import atomic_write_json, atomic_write_with, sha256_file, sha256_json
from clinical_mborl.core.models import StrictModel
from clinical_mborl.simulators.sepsis.config import SepsisConfig
from clinical_mborl.simulators.sepsis.engine import SepsisSimulator
from clinical_mborl.simulators.sepsis.tables import build_tables

SIMULATION_FILE = "simulation.json"
TABLE_FILES = ("stays", "measurements", "treatments")
MAX_PATIENTS = 1_000_000


class SimulationSummary(StrictModel):
    """What `simulate_sepsis` wrote, with headline outcomes of the simulated cohort."""

    simulator: str = "sepsis"
    out_dir: str
    seed: int
    n_stays: int
    n_patients: int
    package_version: str = __version__
    config_sha256: str
    files: dict[str, str]
    rows: dict[str, int]
    hospital_mortality: float
    icu_mortality: float
    median_icu_los_days: float
    vasopressor_share: float
    median_fluid_first_24h_ml: float


def _check(n_patients: int, seed: int) -> None:
    if not isinstance(n_patients, int | np.integer) or not 1 <= n_patients <= MAX_PATIENTS:
        raise InputError(f"simulate: patients must be an integer in [1, {MAX_PATIENTS}], got {n_patients!r}; "
                         "pass e.g. --patients 1000.")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"simulate: seed must be a non-negative integer, got {seed!r}; pass e.g. --seed 0.")


def _parquet_writer(frame: pl.DataFrame) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        frame.write_parquet(tmp, compression="zstd", statistics=True)

    return write


def write_ehr_tables(tables: dict[str, pl.DataFrame], out_dir: str | Path) -> dict[str, str]:
    """Write the three EHR tables as parquet files (atomically) into `out_dir`; sha256 by file name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for name in TABLE_FILES:
        path = out / f"{name}.parquet"
        atomic_write_with(path, _parquet_writer(tables[name]))
        files[path.name] = sha256_file(path)
    return files


def run_simulation(
    n_patients: int, seed: int, config: SepsisConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> SepsisSimulator:
    """Simulate `n_patients` stays under usual care until every stay has ended (no files)."""
    _check(n_patients, seed)
    sim = SepsisSimulator(int(n_patients), int(seed), config)
    sim.run_until_done(progress)
    return sim


def simulate_sepsis(
    n_patients: int,
    seed: int,
    out_dir: str | Path,
    config: SepsisConfig | None = None,
    progress: bool = False,
) -> SimulationSummary:
    """Simulate `n_patients` ICU stays with sepsis under usual care and write the EHR tables to `out_dir`."""
    _check(n_patients, seed)
    cfg = config or SepsisConfig()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"simulate: --out {out} is a file; expected a folder (it is created if missing).")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.outcome.max_stay_hours, unit="h", desc="simulating", leave=False)
    last = [0]

    def tick(hour: int) -> None:
        if bar is not None:
            bar.update(hour - last[0])
            last[0] = hour

    sim = run_simulation(n_patients, seed, cfg, tick)
    if bar is not None:
        bar.close()
    tables = build_tables(sim)
    files = write_ehr_tables(tables, out)
    stays = tables["stays"]
    summary = SimulationSummary(
        out_dir=str(out),
        seed=int(seed),
        n_stays=stays.height,
        n_patients=stays["patient_id"].n_unique(),
        config_sha256=sha256_json(cfg.model_dump(mode="json")),
        files=files,
        rows={name: tables[name].height for name in TABLE_FILES},
        hospital_mortality=float(sim.died.mean()),
        icu_mortality=float(sim.died_in_icu.mean()),
        median_icu_los_days=float(np.median(sim.end_minute) / 1440.0),
        vasopressor_share=float(sim.ever_vasopressor.mean()),
        median_fluid_first_24h_ml=float(np.median(sim.fluid_first_24h_ml)),
    )
    record = {"simulator": "sepsis", "package_version": __version__, "seed": int(seed),
              "n_patients": int(n_patients), "config": cfg.model_dump(mode="json"),
              "summary": summary.model_dump(mode="json", exclude={"out_dir"})}
    atomic_write_json(out / SIMULATION_FILE, record)
    return summary
