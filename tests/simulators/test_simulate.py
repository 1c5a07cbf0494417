"""`simulate_sepsis` and `clinical-mborl simulate sepsis`: files, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinical_mborl.cli.app import app
from clinical_mborl.core.errors import InputError
from clinical_mborl.simulators.sepsis import simulate_sepsis
from clinical_mborl.simulators.sepsis.simulate import SIMULATION_FILE

FILES = ("stays.parquet", "measurements.parquet", "treatments.parquet", SIMULATION_FILE)


def test_same_seed_gives_byte_identical_files_and_other_seeds_differ(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate_sepsis(40, seed=seed, out_dir=tmp_path / name)
    for f in FILES:
        a, b, c = ((tmp_path / d / f).read_bytes() for d in "abc")
        assert a == b, f
        assert a != c, f


def test_simulation_json_records_config_seed_version(tmp_path: Path) -> None:
    summary = simulate_sepsis(25, seed=1, out_dir=tmp_path)
    record = json.loads((tmp_path / SIMULATION_FILE).read_text())
    assert record["seed"] == 1 and record["n_patients"] == 25 and record["package_version"]
    assert record["config"]["outcome"]["max_stay_hours"] == 720
    assert record["summary"]["files"] == summary.files
    assert 0.0 <= summary.hospital_mortality <= 1.0 and summary.n_stays == 25


@pytest.mark.parametrize("n,seed", [(0, 1), (-5, 1), (10, -1)])
def test_bad_arguments_are_input_errors(tmp_path: Path, n: int, seed: int) -> None:
    with pytest.raises(InputError):
        simulate_sepsis(n, seed=seed, out_dir=tmp_path)


def test_cli_simulate_writes_tables_and_exits_2_on_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["--quiet", "simulate", "sepsis", "--patients", "15", "--seed", "2", "--out",
                             str(tmp_path / "ehr")])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["n_stays"] == 15
    assert all((tmp_path / "ehr" / f).is_file() for f in FILES)
    bad = runner.invoke(app, ["simulate", "sepsis", "--patients", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
