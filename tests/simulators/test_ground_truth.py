"""Closed-loop ground truth: same featurisation as `cohort build`, determinism, oracle > clinician."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from clinical_mborl.cli.app import app
from clinical_mborl.cohort import ActionSpaceInfo, TransitionSet
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.cohort.features import fill_values_from_manifest
from clinical_mborl.cohort.spec import IntermediateReward
from clinical_mborl.core.errors import InputError
from clinical_mborl.simulators.sepsis.ground_truth import (
    evaluate_in_closed_loop,
    mean_interval,
    run_closed_loop,
    wilson_interval,
)
from clinical_mborl.simulators.sepsis.policies import Oracle, UsualCare
from clinical_mborl.simulators.sepsis.returns import episode_returns


class UniformPolicy:
    """Uniform over the joint dose levels (discrete) or over [0, dose_max] (continuous)."""

    name = "uniform"

    def __init__(self, names: tuple[str, ...], space: ActionSpaceInfo) -> None:
        self.feature_names, self.space = names, space
        self.action_kind: Literal["discrete", "continuous"] = space.kind

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        return np.full((states.shape[0], self.space.n_actions), 1.0 / self.space.n_actions)

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.action_kind == "discrete":
            return rng.integers(0, self.space.n_actions, states.shape[0])
        hi = np.array([d.dose_max for d in self.space.dimensions])
        return rng.uniform(0.0, 1.0, (states.shape[0], hi.size)) * hi


def _write(tables: dict[str, pl.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, frame in tables.items():
        frame.write_parquet(folder / f"{name}.parquet")
    return folder


@pytest.mark.parametrize("cohort_name", ["discrete_cohort", "continuous_cohort"])
def test_closed_loop_states_and_doses_equal_cohort_build(cohort_name: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    cohort: TransitionSet = request.getfixturevalue(cohort_name)
    m = cohort.manifest
    run = run_closed_loop(UniformPolicy(cohort.feature_names, m.action_space), m.spec, m, 40, seed=3)
    build_cohort(m.spec, _write(run.tables, tmp_path / "ehr"), tmp_path / "cohort", progress=False)
    built = TransitionSet.load(tmp_path / "cohort").frame
    joined = built.join(run.states, on=["stay_id", "step"], how="left", suffix="_cl")
    assert joined.height == built.height > 100
    for f in [*m.spec.features, *m.spec.static_features]:
        missing = joined[f.name + "_missing"] == 1.0 if f.missing_indicator else pl.Series([False] * joined.height)
        assert (joined[f.name + "_cl"].is_null() == missing).all(), f.name
        observed = joined.filter(~missing)
        np.testing.assert_allclose(observed[f.name].to_numpy(), observed[f.name + "_cl"].to_numpy(), rtol=1e-9,
                                   err_msg=f.name)
    doses = built.filter(~pl.col("done") & ~pl.col("truncated")).join(run.doses, on=["stay_id", "step"],
                                                                        suffix="_applied")
    assert doses.height > 100
    for dim in m.action_space.dimensions:
        np.testing.assert_allclose(doses[dim.name].to_numpy(), doses[dim.name + "_applied"].to_numpy(),
                                   rtol=1e-4, atol=6e-4, err_msg=dim.name)


@pytest.mark.parametrize("intermediate", [False, True])
def test_returns_equal_the_rewards_cohort_build_writes(discrete_cohort: TransitionSet, ehr_dir: Path,
                                                       ehr_tables: dict[str, pl.DataFrame], tmp_path: Path,
                                                       intermediate: bool) -> None:
    cohort = discrete_cohort
    if intermediate:  # an intermediate term makes the return depend on (filled) states
        spec = discrete_cohort.manifest.spec
        term = IntermediateReward(feature="map_mmhg", kind="below", weight=-0.05, threshold=65.0)
        spec = spec.model_copy(update={"reward": spec.reward.model_copy(update={"intermediate": [term]})})
        build_cohort(spec, ehr_dir, tmp_path / "cohort", progress=False)
        cohort = TransitionSet.load(tmp_path / "cohort")
    m = cohort.manifest
    ours = episode_returns(m.spec, ehr_tables, fill_values_from_manifest(m), count_short_stays=False)
    theirs = (cohort.frame.with_columns((pl.col("reward") * m.gamma ** pl.col("step")).alias("g"))
              .group_by("stay_id").agg(pl.col("g").sum()).sort("stay_id"))
    assert (cohort.frame["reward_intermediate"] != 0).any() == intermediate
    assert ours["stay_id"].to_list() == theirs["stay_id"].to_list()
    np.testing.assert_allclose(ours["return"].to_numpy(), theirs["g"].to_numpy(), rtol=1e-12)


def test_same_seed_same_result_other_seed_differs(discrete_cohort: TransitionSet) -> None:
    m = discrete_cohort.manifest
    policy = UniformPolicy(discrete_cohort.feature_names, m.action_space)
    a, b = (evaluate_in_closed_loop(policy, m.spec, m, 30, seed=5) for _ in range(2))
    c = evaluate_in_closed_loop(policy, m.spec, m, 30, seed=6)
    assert a == b
    assert (a.value, a.mortality) != (c.value, c.mortality)
    assert a.value_ci_low <= a.value <= a.value_ci_high and a.mortality_ci_low <= a.mortality <= a.mortality_ci_high


def test_oracle_lowers_mortality_against_clinician(discrete_cohort: TransitionSet) -> None:
    """Paired on the same patients (common random numbers): one-sided 95% lower bound > 0."""
    m = discrete_cohort.manifest
    fills = fill_values_from_manifest(m)
    died = {}
    for policy in (UsualCare(), Oracle()):
        run = run_closed_loop(policy, m.spec, m, 300, seed=21)
        died[policy.name] = episode_returns(m.spec, run.tables, fills).select("stay_id", "died_in_hospital")
    paired = died["clinician"].join(died["oracle"], on="stay_id", suffix="_oracle")
    assert paired.height >= 290
    diff = (paired["died_in_hospital"].cast(pl.Float64) - paired["died_in_hospital_oracle"].cast(pl.Float64)).to_numpy()
    lower = diff.mean() - 1.645 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert lower > 0.0, (diff.mean(), lower)


def test_intervals() -> None:
    m, lo, hi = mean_interval(np.array([0.0, 1.0, 1.0, 0.0]))
    assert lo < m == 0.5 < hi
    p, lo, hi = wilson_interval(0, 50)
    assert p == 0.0 == lo < hi < 0.1


def test_wrong_spec_or_time_grid_is_refused(discrete_cohort: TransitionSet) -> None:
    m = discrete_cohort.manifest
    odd = m.spec.model_copy(update={"time": m.spec.time.model_copy(update={"step_hours": 2.5})})
    with pytest.raises(InputError, match="whole hours"):
        run_closed_loop(UsualCare(), odd, m, 5, seed=0)
    with pytest.raises(InputError, match="expects features"):
        run_closed_loop(UniformPolicy(("x",), m.action_space), m.spec, m, 5, seed=0)


def test_cli_ground_truth(discrete_cohort_dir: Path, tmp_path: Path) -> None:
    folder = discrete_cohort_dir
    runner = CliRunner()
    ok = runner.invoke(app, ["--quiet", "ground-truth", "--sim", "sepsis", "--policy", "no-treatment",
                             "--episodes", "20", "--seed", "1", "--cohort", str(folder)])
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.stdout)
    assert out["policy"] == "no-treatment" and out["episodes"] == 20 and out["value_ci_low"] <= out["value"]
    bad = runner.invoke(app, ["ground-truth", "--sim", "other", "--policy", "oracle", "--cohort", str(folder)])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["ground-truth", "--policy", str(tmp_path / "nope"), "--cohort", str(folder)])
    assert missing.exit_code == 2
