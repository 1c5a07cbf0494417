"""`clinical-mborl train behavior|dynamics` end to end on a toy cohort folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinical_mborl.behavior import ClinicianPolicy
from clinical_mborl.cli.app import app
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.transitions import MANIFEST_FILE, TRANSITIONS_FILE
from clinical_mborl.core.io import sha256_file
from clinical_mborl.dynamics import DynamicsEnsemble

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory, toy: TransitionSet) -> Path:
    """The toy cohort written as `cohort build` would (parquet + manifest with its sha256)."""
    d = tmp_path_factory.mktemp("cohort")
    toy.frame.write_parquet(d / TRANSITIONS_FILE)
    manifest = toy.manifest.model_copy(update={"transitions_sha256": sha256_file(d / TRANSITIONS_FILE)})
    (d / MANIFEST_FILE).write_text(manifest.model_dump_json())
    return d


def test_train_behavior(cohort_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["--quiet", "train", "behavior", "--cohort", str(cohort_dir), "--out",
                              str(tmp_path / "pi_b"), "--folds", "2", "--hidden", "8", "--seed", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert set(summary["held_out"]) == {"val", "test"} and summary["action_kind"] == "discrete"
    pol = ClinicianPolicy.load(tmp_path / "pi_b")
    assert pol.config.seed == 1 and pol.n_folds == 2


def test_train_dynamics(cohort_dir: Path, tmp_path: Path) -> None:
    args = ["--quiet", "train", "dynamics", "--cohort", str(cohort_dir), "--out", str(tmp_path / "dyn"),
            "--hidden", "8", "--members", "3", "--elites", "2", "--max-epochs", "2",
            "--checkpoint-dir", str(tmp_path / "ckpt")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert len(summary["elites"]) == 2 and summary["epochs_trained"] == 2
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    ens = DynamicsEnsemble.load(tmp_path / "dyn")
    assert ens.n_members == 3 and ens.config.hidden_sizes == (8,)


@pytest.mark.parametrize("extra", [["--members", "2", "--elites", "3"], ["--hidden", "8,x"]])
def test_bad_options_exit_2(cohort_dir: Path, tmp_path: Path, extra: list[str]) -> None:
    res = runner.invoke(app, ["--quiet", "train", "dynamics", "--cohort", str(cohort_dir), "--out",
                              str(tmp_path / "dyn"), *extra])
    assert res.exit_code == 2 and "error:" in res.output


def test_missing_cohort_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["--quiet", "train", "behavior", "--cohort", str(tmp_path / "none"), "--out",
                              str(tmp_path / "pi_b")])
    assert res.exit_code == 2 and "cohort build" in res.output
