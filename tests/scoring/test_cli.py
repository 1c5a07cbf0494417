"""`clinical-mborl score`: one library call, JSON summary, tables written, exit codes 0 / 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinical_mborl.behavior import fit_behavior
from clinical_mborl.cli.app import app
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.transitions import MANIFEST_FILE, TRANSITIONS_FILE
from clinical_mborl.core.io import sha256_file

from .conftest import TINY_BEHAVIOR, Toy

FAST = ["--jobs", "1", "--resamples", "100", "--estimators", "wis,pdwis,wdr,fqe", "--rollouts", "1"]


@pytest.fixture(scope="module")
def folders(toy: Toy, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    cohort = root / "cohort"
    cohort.mkdir()
    ts = toy.transitions
    ts.frame.write_parquet(cohort / TRANSITIONS_FILE)
    manifest = ts.manifest.model_copy(update={"transitions_sha256": sha256_file(cohort / TRANSITIONS_FILE)})
    (cohort / MANIFEST_FILE).write_text(manifest.model_dump_json())
    fit_behavior(TransitionSet.load(cohort), TINY_BEHAVIOR).save(root / "behavior")
    return {"cohort": cohort, "behavior": root / "behavior", "root": root}


def _score(folders: dict[str, Path], out: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--quiet", "score", "--cohort", str(folders["cohort"]),
                                      "--behavior", str(folders["behavior"]), "--out", str(out), *FAST, *args])
    return result.exit_code, result.output


def test_scores_good_candidates_and_lists_bad_ones_exit_0(folders: dict[str, Path]) -> None:
    out = folders["root"] / "ok"
    code, output = _score(folders, out, "--policy", "clinician", "--policy", "no-treatment",
                          "--policy", str(folders["root"] / "missing"))
    assert code == 0, output
    summary = json.loads(output)
    assert summary["primary_estimator"] == "wdr"
    assert [r["candidate"] for r in summary["ranking"]][-1] == "missing"
    assert summary["ranking"][-1] == {"rank": None, "candidate": "missing", "status": "error"}
    with Path(summary["scores_csv"]).open() as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2", ""] and Path(summary["scores_html"]).is_file()


def test_no_candidate_scored_exits_2_and_still_writes_the_table(folders: dict[str, Path]) -> None:
    out = folders["root"] / "none"
    code, output = _score(folders, out, "--policy", str(folders["root"] / "gone"), "--policy", "not-a-policy")
    assert code == 2 and "no candidate could be scored" in output
    with (out / "scores.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["candidate"], r["status"]) for r in rows] == [("gone", "error"), ("not-a-policy", "error")]
    assert "not-a-policy" in (out / "scores.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--policy", "clinician", "--estimators", "wis"], "primary estimators"),
    (["--policy", "clinician", "--resamples", "0"], "n_resamples"),
    (["--policy", "clinician", "--gate-config", "/nonexistent/gate.yaml"], "gate config"),
    (["--policy", "clinician", "--sensitivity", "1.2,x"], "--sensitivity: expected comma-separated numbers"),
    (["--policy", "clinician", "--sensitivity", "0.9"], "sensitivity_lambdas"),
])
def test_bad_options_exit_2_with_a_reason(folders: dict[str, Path], args: list[str], message: str) -> None:
    code, output = _score(folders, folders["root"] / "bad", *args)
    assert code == 2 and message in output


def test_missing_cohort_exits_2(folders: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--quiet", "score", "--policy", "clinician", "--cohort", str(tmp_path),
                                      "--behavior", str(folders["behavior"]), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "transitions.parquet" in result.output


def test_sensitivity_adds_nested_columns_to_the_table(folders: dict[str, Path]) -> None:
    code, output = _score(folders, folders["root"] / "msm", "--policy", "no-treatment", "--sensitivity", "1.2")
    assert code == 0, output
    with Path(json.loads(output)["scores_csv"]).open() as f:
        row = next(csv.DictReader(f))
    assert float(row["fqe_msm1.2_ci_low"]) <= float(row["fqe_ci_low"]) <= float(row["fqe_ci_high"]) \
        <= float(row["fqe_msm1.2_ci_high"])
