"""Treatment-history state features on a simulated cohort: cohort build and the closed loop agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from clinical_mborl.cohort import TransitionSet, load_cohort_spec
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.cohort.spec import CohortSpec, TreatmentFeatureSpec
from clinical_mborl.cohort.transitions import NEXT_PREFIX
from clinical_mborl.simulators.sepsis.ground_truth import run_closed_loop
from tests.simulators.conftest import DISCRETE_SPEC
from tests.simulators.test_ground_truth import UniformPolicy, _write

FLUID, PRESSOR = "iv_fluid_ml", "norepinephrine_eq_ug_kg_min"


def history_spec() -> CohortSpec:
    spec = load_cohort_spec(DISCRETE_SPEC)
    return spec.model_copy(update={"treatment_features": [
        TreatmentFeatureSpec(name="iv_fluid_previous_ml", action=FLUID, kind="previous"),
        TreatmentFeatureSpec(name="iv_fluid_total_ml", action=FLUID, kind="cumulative"),
        TreatmentFeatureSpec(name="vasopressor_previous_ug_kg_min", action=PRESSOR, kind="previous"),
    ]})


@pytest.fixture(scope="module")
def history_cohort(ehr_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TransitionSet:
    out = tmp_path_factory.mktemp("history") / "cohort"
    build_cohort(history_spec(), ehr_dir, out, progress=False)
    return TransitionSet.load(out)


def test_built_history_is_the_earlier_doses(history_cohort: TransitionSet) -> None:
    frame = history_cohort.frame.sort("stay_id", "step")
    prev = pl.col(FLUID).shift(1).over("stay_id").fill_null(0.0)
    total = pl.col(FLUID).cum_sum().over("stay_id") - pl.col(FLUID)
    check = frame.select(prev.alias("prev"), total.alias("total"),
                         pl.col(PRESSOR).shift(1).over("stay_id").fill_null(0.0).alias("ne"))
    assert frame.height > 500 and (frame["iv_fluid_total_ml"] > 0).mean() > 0.3
    np.testing.assert_allclose(frame["iv_fluid_previous_ml"].to_numpy(), check["prev"].to_numpy())
    np.testing.assert_allclose(frame["iv_fluid_total_ml"].to_numpy(), check["total"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(frame["vasopressor_previous_ug_kg_min"].to_numpy(), check["ne"].to_numpy())
    # the next state's history adds this step's dose
    np.testing.assert_allclose(frame[NEXT_PREFIX + "iv_fluid_total_ml"].to_numpy(),
                               (frame["iv_fluid_total_ml"] + frame[FLUID]).to_numpy(), atol=1e-6)
    np.testing.assert_allclose(frame[NEXT_PREFIX + "iv_fluid_previous_ml"].to_numpy(), frame[FLUID].to_numpy())


def test_manifest_describes_the_history_features(history_cohort: TransitionSet) -> None:
    infos = {f.name: f for f in history_cohort.manifest.state_features}
    assert history_cohort.feature_names[-3:] == ("iv_fluid_previous_ml", "iv_fluid_total_ml",
                                                 "vasopressor_previous_ug_kg_min")
    assert infos["iv_fluid_total_ml"].kind == "treatment" and infos["iv_fluid_total_ml"].unit == "mL"
    assert infos["iv_fluid_total_ml"].transform == "log_zscore" and infos["iv_fluid_total_ml"].std > 0
    assert infos["iv_fluid_total_ml"].fill_value is None


def test_closed_loop_history_equals_cohort_build(history_cohort: TransitionSet, tmp_path: Path) -> None:
    m = history_cohort.manifest
    run = run_closed_loop(UniformPolicy(history_cohort.feature_names, m.action_space), m.spec, m, 40, seed=5)
    build_cohort(m.spec, _write(run.tables, tmp_path / "ehr"), tmp_path / "cohort", progress=False)
    built = TransitionSet.load(tmp_path / "cohort").frame
    joined = built.join(run.states, on=["stay_id", "step"], how="inner", suffix="_cl")
    assert joined.height > 100 and (joined["iv_fluid_total_ml"] > 0).mean() > 0.5
    for name in ("iv_fluid_previous_ml", "iv_fluid_total_ml", "vasopressor_previous_ug_kg_min"):
        np.testing.assert_allclose(joined[name].to_numpy(), joined[name + "_cl"].to_numpy(), rtol=1e-4,
                                   atol=6e-4 * 18, err_msg=name)  # 18 steps of dose rounding


def test_model_rollouts_keep_the_history_exact(history_cohort: TransitionSet, tmp_path: Path) -> None:
    import torch

    from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics

    config = DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(16,), max_epochs=2, batch_size=256, seed=3)
    names = list(history_cohort.feature_names)
    cols = [names.index(n) for n in ("iv_fluid_previous_ml", "iv_fluid_total_ml", "vasopressor_previous_ug_kg_min")]
    plain = fit_dynamics(history_cohort, config, quiet=True)  # default: the network predicts them
    assert not plain.history and "exact_treatment_history" not in config.model_dump()
    a0 = history_cohort.split("test").arrays()
    p = plain.predict(torch.as_tensor(a0.states[:50]), torch.as_tensor(a0.actions[:50]), torch.as_tensor(a0.step[:50]))
    assert float(p.next_std[..., cols].min()) > 0.0

    ens = fit_dynamics(history_cohort, config.model_copy(update={"exact_treatment_history": True}), quiet=True)
    assert [c.column for c in ens.history.columns] == cols
    assert np.isfinite(ens.metrics["holdout"]["per_feature"]["iv_fluid_total_ml"]["nll"])  # the network's own
    ens.save(tmp_path / "dyn")
    loaded = DynamicsEnsemble.load(tmp_path / "dyn")
    assert loaded.history.columns == ens.history.columns

    a = history_cohort.split("test").arrays()
    first = a.step == 0
    state = torch.as_tensor(a.states[first])
    steps = torch.zeros(state.shape[0], dtype=torch.long)
    space = history_cohort.manifest.action_space
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    total = np.zeros(state.shape[0])
    for _ in range(4):
        action = rng.integers(space.n_actions, size=state.shape[0])
        given = space.doses_of(action)  # the levels' median doses, in clinical units
        pred = loaded.predict(state, torch.as_tensor(action), steps)
        assert float(pred.next_std[..., cols].abs().max()) == 0.0
        state = loaded.step(state, torch.as_tensor(action), steps, gen).next_states
        raw = loaded.normalizer.inverse(state.numpy())
        total += given[:, 0]
        np.testing.assert_allclose(raw[:, cols[0]], given[:, 0], rtol=1e-3, atol=1e-2)
        np.testing.assert_allclose(raw[:, cols[1]], total, rtol=1e-3, atol=1e-1)
        np.testing.assert_allclose(raw[:, cols[2]], given[:, 1], rtol=1e-3, atol=1e-4)
        steps = steps + 1
