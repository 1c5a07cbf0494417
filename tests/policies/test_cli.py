"""`clinical-mborl train policy`: one library call, JSON summary, exit codes 0 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinical_mborl.cli import app
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_file
from clinical_mborl.policies import LearnedPolicy
from clinical_mborl.policies.command import parse_settings

from .conftest import Cohort


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, discrete_cohort: Cohort) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    cohort = root / "cohort"
    cohort.mkdir()
    ts = discrete_cohort.transitions
    ts.frame.write_parquet(cohort / "transitions.parquet")
    manifest = ts.manifest.model_copy(update={"transitions_sha256": sha256_file(cohort / "transitions.parquet")})
    (cohort / "manifest.json").write_text(manifest.model_dump_json())
    loaded = TransitionSet.load(cohort)
    assert loaded.manifest_hash != ts.manifest_hash  # the sha differs, so refit on the written cohort
    from clinical_mborl.behavior import BehaviorConfig, fit_behavior
    from clinical_mborl.dynamics import DynamicsConfig, fit_dynamics

    fit_behavior(loaded, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=3)).save(root / "behavior")
    fit_dynamics(loaded, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(16,), max_epochs=2),
                 quiet=True).save(root / "dynamics")
    return {"cohort": cohort, "behavior": root / "behavior", "dynamics": root / "dynamics", "root": root}


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--quiet", "train", "policy", *args])
    return result.exit_code, result.output


def test_train_policy_writes_an_artifact_and_prints_a_summary(folders: dict[str, Path]) -> None:
    out = folders["root"] / "combo"
    code, output = _run("--algo", "combo", "--cohort", str(folders["cohort"]), "--behavior", str(folders["behavior"]),
                        "--dynamics", str(folders["dynamics"]), "--out", str(out), "--updates", "12",
                        "--set", "beta=5", "--set", "hidden=[16]", "--set", "rollout_batch=16",
                        "--set", "constraint.kl_weight=0.1")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["algo"] == "combo" and summary["config"]["beta"] == 5
    assert summary["config"]["constraint"]["kl_weight"] == 0.1 and "val_model_value" in summary
    from clinical_mborl.behavior import ClinicianPolicy

    policy = LearnedPolicy.load(out, behavior=ClinicianPolicy.load(folders["behavior"]))
    assert policy.algo == "combo" and policy.config["n_updates"] == 12
    # the artifact names the clinician model and the dynamics ensemble it was trained with
    expected = {"behavior_manifest_sha256": sha256_file(folders["behavior"] / "manifest.json"),
                "dynamics_manifest_sha256": sha256_file(folders["dynamics"] / "manifest.json")}
    assert summary["trained_with"] == expected
    assert json.loads((out / "training.json").read_text())["trained_with"] == expected


@pytest.mark.parametrize("args, message", [
    (["--algo", "dqn"], "unknown algorithm 'dqn'"),
    (["--algo", "morel"], "morel: needs --dynamics DIR"),
    (["--algo", "bc", "--set", "betta=1"], "unknown setting"),
    (["--algo", "bc", "--set", "beta"], "expected key=value"),
    (["--algo", "bc"], "needs the clinician policy"),
])
def test_bad_requests_exit_2_with_a_reason(folders: dict[str, Path], args: list[str], message: str) -> None:
    code, output = _run(*args, "--cohort", str(folders["cohort"]), "--out", str(folders["root"] / "x"),
                        "--updates", "2")
    assert code == 2 and message in output


def test_settings_parse_yaml_values_and_nest_the_constraint() -> None:
    assert parse_settings(["horizon=1", "constraint.support_threshold=0.05", "quiet=true"]) == {
        "horizon": 1, "constraint": {"support_threshold": 0.05}, "quiet": True}
    with pytest.raises(InputError, match="only constraint"):
        parse_settings(["actor.lr=1"])
