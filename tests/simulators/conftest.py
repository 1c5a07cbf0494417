"""Shared fixtures: one small usual-care simulation and its cohort, built once per session."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from clinical_mborl.cohort import TransitionSet, load_cohort_spec
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.simulators.sepsis import simulate_sepsis

ROOT = Path(__file__).resolve().parents[2]
DISCRETE_SPEC = ROOT / "cohorts" / "sepsis_fluids_vasopressors.yaml"
CONTINUOUS_SPEC = ROOT / "cohorts" / "sepsis_continuous.yaml"


@pytest.fixture(scope="session")
def ehr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "ehr"
    simulate_sepsis(160, seed=11, out_dir=out)
    return out


@pytest.fixture(scope="session")
def ehr_tables(ehr_dir: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(ehr_dir / f"{name}.parquet") for name in ("stays", "measurements", "treatments")}


@pytest.fixture(scope="session")
def discrete_cohort_dir(ehr_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "discrete"
    build_cohort(load_cohort_spec(DISCRETE_SPEC), ehr_dir, out, progress=False)
    return out


@pytest.fixture(scope="session")
def discrete_cohort(discrete_cohort_dir: Path) -> TransitionSet:
    return TransitionSet.load(discrete_cohort_dir)


@pytest.fixture(scope="session")
def continuous_cohort(ehr_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TransitionSet:
    out = tmp_path_factory.mktemp("cohort") / "continuous"
    build_cohort(load_cohort_spec(CONTINUOUS_SPEC), ehr_dir, out, progress=False)
    return TransitionSet.load(out)
