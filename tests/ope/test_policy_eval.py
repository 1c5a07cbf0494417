"""`evaluate_policy` on a toy cohort and `clinical-mborl evaluate` end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.cli.app import app
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.cohort.transitions import MANIFEST_FILE, TRANSITIONS_FILE
from clinical_mborl.core.errors import InputError
from clinical_mborl.core.io import sha256_file
from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics
from clinical_mborl.ope import OPEConfig, OPEReport
from clinical_mborl.ope.fqe import FQEConfig
from clinical_mborl.ope.policy_eval import build_ope_data, evaluate_policy, value_bounds
from clinical_mborl.policies import NoTreatmentPolicy, RandomPolicy

FAST = OPEConfig(n_resamples=200, eval_splits=("val", "test"), model_rollouts=3,
                 fqe=FQEConfig(hidden_sizes=(16,), epochs_per_iteration=2))


@pytest.fixture(scope="module")
def toy() -> tuple[TransitionSet, ClinicianPolicy, DynamicsEnsemble]:
    ts = make_toy_transitions(120, seed=0)
    pi_b = fit_behavior(ts, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=3))
    ens = fit_dynamics(ts, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(16,), max_epochs=2), quiet=True)
    return ts, pi_b, ens


def test_every_estimator_runs_and_the_arrays_line_up_with_the_cohort(toy):
    ts, pi_b, ens = toy
    policy = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    data = build_ope_data(policy, ts, pi_b, ens, FAST)
    held_out = ts.split("val", "test")
    ep = held_out.episodes()
    np.testing.assert_array_equal(data.mask, ep.mask)
    np.testing.assert_allclose(data.rewards, ep.rewards)
    # the random policy gives 1/9 to every action; softened with the clinician's probability
    rows = held_out.arrays(normalised=False)
    p_b = pi_b.action_probabilities(rows.states)[np.arange(len(rows)), rows.actions]
    np.testing.assert_allclose(data.pb[rows.episode, rows.step], p_b)
    np.testing.assert_allclose(data.pe[rows.episode, rows.step], 0.99 / 9 + 0.01 * p_b)
    assert data.model_returns is not None and data.q_sa is not None
    assert data.return_bounds == (-1.0, 1.0)
    # no intermediate rewards in the toy cohort: every Q-value lies in the outcome bounds
    assert value_bounds(ts, ts.arrays(normalised=False)) == (-1.0, 1.0)
    raw = ts.arrays(normalised=False)
    inter = np.zeros(len(raw), np.float32)
    inter[[3, 7]] = [-0.25, 0.5]  # a window of the worst per-step penalty and of the best bonus
    window = sum(ts.manifest.gamma ** k for k in range(ts.manifest.n_steps))
    lo, hi = value_bounds(ts, dataclasses.replace(raw, reward_intermediate=inter))
    assert lo == pytest.approx(-1.0 - 0.25 * window) and hi == pytest.approx(1.0 + 0.5 * window)

    report = evaluate_policy(policy, ts, pi_b, ens, FAST)
    assert [e.estimator for e in report.estimates] == ["wis", "pdwis", "dr", "wdr", "fqe", "model_based"]
    assert report.skipped == {}
    for e in report.estimates:
        assert e.value is not None and e.ci_low is not None and e.ci_high is not None
        assert e.ci_low <= e.ci_high
    assert "interval_scope" in report.estimate("fqe").diagnostics


def test_the_q_model_is_given_the_cohort_value_bounds(toy, monkeypatch):
    import clinical_mborl.ope.policy_eval as policy_eval

    ts, pi_b, _ = toy
    seen = []
    real = policy_eval.cross_fit_q

    def spy(*args, **kwargs):
        seen.append(args[7] if len(args) > 7 else kwargs.get("value_bounds"))
        return real(*args, **kwargs)

    monkeypatch.setattr(policy_eval, "cross_fit_q", spy)
    build_ope_data(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space), ts, pi_b, None,
                   FAST.model_copy(update={"estimators": ("fqe",)}))
    assert seen == [(-1.0, 1.0)]


def test_the_clinician_evaluated_on_its_own_rows_is_its_mean_return(toy):
    ts, pi_b, _ = toy
    for splits in (("train",), ("test",)):  # out-of-fold probabilities, then the fold average
        cfg = OPEConfig(n_resamples=100, eval_splits=splits, estimators=("wis", "pdwis"))
        report = evaluate_policy(pi_b, ts, pi_b, None, cfg)
        for name in ("wis", "pdwis"):
            assert report.estimate(name).value == pytest.approx(report.clinician.value, abs=1e-9)
            assert report.difference(name).value == pytest.approx(0.0, abs=1e-9)
        assert report.estimate("wis").ess == pytest.approx(report.n_episodes)


def test_incompatible_inputs_are_refused(toy):
    ts, pi_b, _ = toy
    other = make_toy_transitions(30, seed=1, n_levels=2)
    with pytest.raises(InputError, match="another cohort"):
        build_ope_data(NoTreatmentPolicy(other.feature_names, other.manifest.action_space), other, pi_b, None, FAST)
    with pytest.raises(InputError, match="dose levels"):
        build_ope_data(NoTreatmentPolicy(other.feature_names, other.manifest.action_space), ts, pi_b, None, FAST)
    with pytest.raises(InputError, match="no rows"):
        build_ope_data(pi_b, ts.split("train"), pi_b, None, FAST)
    with pytest.raises(InputError, match=r"no rows in q_fit_splits \['train'\]"):
        build_ope_data(pi_b, ts.split("val", "test"), pi_b, None, FAST)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, toy) -> dict[str, Path]:
    ts, pi_b, ens = toy
    root = tmp_path_factory.mktemp("ope_cli")
    cohort = root / "cohort"
    cohort.mkdir()
    ts.frame.write_parquet(cohort / TRANSITIONS_FILE)
    manifest = ts.manifest.model_copy(update={"transitions_sha256": sha256_file(cohort / TRANSITIONS_FILE)})
    (cohort / MANIFEST_FILE).write_text(manifest.model_dump_json())
    loaded = TransitionSet.load(cohort)
    pi_b = fit_behavior(loaded, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=2))
    pi_b.save(root / "behavior")
    ens = fit_dynamics(loaded, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(8,), max_epochs=1), quiet=True)
    ens.save(root / "dynamics")
    return {"root": root, "cohort": cohort, "behavior": root / "behavior", "dynamics": root / "dynamics"}


def test_cli_evaluate_writes_ope_json(folders):
    out = folders["root"] / "ope"
    args = ["--quiet", "evaluate", "--policy", "no-treatment", "--cohort", str(folders["cohort"]),
            "--behavior", str(folders["behavior"]), "--dynamics", str(folders["dynamics"]), "--out", str(out),
            "--split", "val,test", "--resamples", "100", "--estimators", "wis,pdwis,model_based",
            "--rollouts", "2", "--clip", "50"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert set(summary["estimates"]) == {"wis", "pdwis", "model_based"}
    report = OPEReport.model_validate_json((out / "ope.json").read_text())
    assert report.policy == "no-treatment" and report.settings.clip == 50.0
    assert report.estimate("wis").n_resamples == 100


def test_cli_evaluate_adjusts_for_treatment_history_when_asked(folders):
    base = ["--quiet", "evaluate", "--policy", "no-treatment", "--cohort", str(folders["cohort"]),
            "--behavior", str(folders["behavior"]), "--split", "val,test", "--resamples", "50",
            "--estimators", "wis"]
    values = {}
    for flag in ("--no-adjust-history", "--adjust-history"):
        out = folders["root"] / f"ope{flag}"
        res = CliRunner().invoke(app, [*base, "--out", str(out), flag])
        assert res.exit_code == 0, res.output
        report = OPEReport.model_validate_json((out / "ope.json").read_text())
        assert report.settings.adjust_for_history is (flag == "--adjust-history")
        values[flag] = report.estimate("wis").value
    assert values["--adjust-history"] != pytest.approx(values["--no-adjust-history"], abs=1e-9)


def test_cli_evaluate_writes_sensitivity_bounds(folders):
    out = folders["root"] / "ope_msm"
    args = ["--quiet", "evaluate", "--policy", "no-treatment", "--cohort", str(folders["cohort"]),
            "--behavior", str(folders["behavior"]), "--out", str(out), "--resamples", "100",
            "--estimators", "fqe", "--sensitivity", "3,1.5", "--split", "val,test"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    report = OPEReport.model_validate_json((out / "ope.json").read_text())
    assert [b.lam for b in report.sensitivity] == [1.5, 3.0] and report.settings.sensitivity_lambdas == (1.5, 3.0)
    fqe = report.estimate("fqe").value
    for b in report.sensitivity:
        assert b.lower.value < fqe < b.upper.value
        assert b.lower.n_resamples == 100 and b.lower_difference.reference == "clinician"
    narrow, wide = report.sensitivity
    assert wide.lower.value < narrow.lower.value and wide.upper.value > narrow.upper.value
    assert set(json.loads(res.stdout)["sensitivity"]) == {"1.5", "3"}


@pytest.mark.parametrize("extra", [["--estimators", "magic"], ["--split", "holdout"], ["--policy", "nowhere.yaml"],
                                   ["--method", "normal"], ["--sensitivity", "0.9"], ["--sensitivity", "two"]])
def test_cli_bad_options_exit_2(folders, extra):
    args = ["--quiet", "evaluate", "--policy", "random", "--cohort", str(folders["cohort"]),
            "--behavior", str(folders["behavior"]), "--out", str(folders["root"] / "bad"), "--resamples", "10"]
    res = CliRunner().invoke(app, args + extra)
    assert res.exit_code == 2, res.output
    assert "error:" in res.output


def test_continuous_doses_use_density_ratios_and_refuse_point_masses():
    ts = make_toy_transitions(80, seed=2, continuous=True)
    pi_b = fit_behavior(ts, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=2))
    cfg = OPEConfig(n_resamples=100, eval_splits=("val", "test"), estimators=("wis", "pdwis", "wdr"))
    policy = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    data = build_ope_data(policy, ts, pi_b, None, cfg)
    rows = ts.split("val", "test").arrays(normalised=False)
    log_pb = pi_b.log_density(rows.states, rows.doses)
    np.testing.assert_allclose(np.log(data.pb[rows.episode, rows.step]), log_pb, rtol=1e-6)
    report = evaluate_policy(policy, ts, pi_b, None, cfg)
    assert [e.estimator for e in report.estimates] == ["wis", "pdwis"] and "wdr" in report.skipped
    with pytest.raises(InputError, match="point mass"):
        build_ope_data(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space), ts, pi_b, None, cfg)


@pytest.mark.parametrize("q_fit, n_folds", [(("train",), 5), (("val", "test"), 2)])
def test_ope_json_records_the_adam_steps_each_fqe_iteration_took(toy, monkeypatch, q_fit, n_folds):
    """The recorded budget is what the fits did: split design exactly, cross-fitted folds on average."""
    import clinical_mborl.ope.fqe as fqe_module

    ts, pi_b, _ = toy
    steps: list[float] = []
    real = fqe_module.train_system

    def spy(system, data, config, horizon):
        real(system, data, config, horizon)
        steps.append(system.global_step / (config.n_iterations or horizon + 1))

    monkeypatch.setattr(fqe_module, "train_system", spy)
    fqe = FQEConfig(hidden_sizes=(8,), epochs_per_iteration=3, batch_size=64, n_members=1, n_folds=n_folds)
    cfg = FAST.model_copy(update={"estimators": ("fqe",), "q_fit_splits": q_fit, "fqe": fqe})
    policy = RandomPolicy(ts.feature_names, ts.manifest.action_space)
    report = evaluate_policy(policy, ts, pi_b, None, cfg)
    assert len(steps) == (1 if q_fit == ("train",) else n_folds)
    assert report.fqe_steps_per_iteration is not None and report.fqe_steps_per_iteration % 3 == 0
    assert abs(report.fqe_steps_per_iteration - np.mean(steps)) <= 3  # one batch per epoch at most
    if q_fit == ("train",):
        assert report.fqe_steps_per_iteration == steps[0]
    fixed = cfg.model_copy(update={"fqe": fqe.model_copy(update={"steps_per_iteration": 5})})
    steps.clear()
    assert evaluate_policy(policy, ts, pi_b, None, fixed).fqe_steps_per_iteration == 5 == steps[0]
    linear = cfg.model_copy(update={"fqe": FQEConfig(function_class="linear", hidden_sizes=(), n_members=1)})
    assert evaluate_policy(policy, ts, pi_b, None, linear).fqe_steps_per_iteration is None
    no_q = cfg.model_copy(update={"estimators": ("wis",)})
    assert evaluate_policy(policy, ts, pi_b, None, no_q).fqe_steps_per_iteration is None


def test_an_off_support_prior_gets_the_clinician_models_support_as_its_mask(toy, monkeypatch):
    import clinical_mborl.ope.policy_eval as policy_eval

    ts, pi_b, _ = toy
    seen = []
    real = policy_eval.cross_fit_q

    def spy(fit, eval_features, *args, **kwargs):
        seen.append((fit, eval_features))
        return real(fit, eval_features, *args, **kwargs)

    monkeypatch.setattr(policy_eval, "cross_fit_q", spy)
    rows = ts.split("val", "test").arrays(normalised=False)
    p_b = pi_b.action_probabilities(rows.states)  # held-out rows: not out-of-fold
    threshold = float(np.median(p_b))
    fqe = FQEConfig(hidden_sizes=(8,), epochs_per_iteration=1, n_members=2, prior_spread=0.3,
                    prior_where="off_support")
    cfg = FAST.model_copy(update={"estimators": ("fqe",), "fqe": fqe, "support_threshold": threshold})
    report = evaluate_policy(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space), ts, pi_b, None, cfg)
    assert report.estimate("fqe").value is not None
    (fit, eval_features), = seen
    off = eval_features[:, -ts.n_actions:]
    np.testing.assert_array_equal(off, p_b < threshold)
    assert 0 < off.mean() < 1 and fit.features.shape[1] == eval_features.shape[1]
    assert set(np.unique(fit.features[:, -ts.n_actions:])) == {0.0, 1.0}
    with pytest.raises(InputError, match="one value head"):
        evaluate_policy(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space), ts, pi_b, None,
                        cfg.model_copy(update={"sensitivity_lambdas": (2.0,)}))
