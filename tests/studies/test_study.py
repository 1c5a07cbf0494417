"""A tiny study end to end (R=3, N=60): files, resume, refusal of other settings, atomic writes, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clinical_mborl.behavior import BehaviorConfig
from clinical_mborl.cli.study_cmd import app
from clinical_mborl.core import io as core_io
from clinical_mborl.core.errors import ArtifactError, InputError
from clinical_mborl.core.io import sha256_json
from clinical_mborl.dynamics import DynamicsConfig
from clinical_mborl.ope import FQEConfig, OPEConfig
from clinical_mborl.studies import StudyConfig, StudyResult, run_study
from clinical_mborl.studies.reference import reference_weights
from clinical_mborl.studies.render import render_coverage
from clinical_mborl.studies.study import run_selected_replicates

TINY_BEHAVIOR = BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=2, fit_splits=("train",), eval_splits=("test",))


def tiny_config(**changes: object) -> StudyConfig:
    base = StudyConfig(
        replicates=3, patients=60, policies=("clinician", "no-treatment", "bc"), training_patients=150,
        learner_updates=5, truth_episodes=100, truth_chunk=100, behavior=TINY_BEHAVIOR,
        reference_behavior=TINY_BEHAVIOR,
        dynamics=DynamicsConfig(n_members=2, n_elites=1, hidden_sizes=(8,), max_epochs=1),
        ope=OPEConfig(n_resamples=50, model_rollouts=1, eval_splits=("test",),
                      fqe=FQEConfig(hidden_sizes=(), n_iterations=2, epochs_per_iteration=1)),
    )
    return base.model_copy(update=changes)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudyResult, StudyResult]:
    out = tmp_path_factory.mktemp("study")
    coverage = run_study("coverage", tiny_config(), out, jobs=1, log=lambda _: None)
    gate = run_study("gate", tiny_config(), out, jobs=1, log=lambda _: None)
    return out, coverage, gate


def test_the_coverage_study_runs_end_to_end(study):
    out, result, _ = study
    assert result.n_replicates == 3 and result.n_errors == 0 and result.timing.replicates_run == 3
    assert sorted(p.name for p in (out / "replicates").iterdir()) == [f"rep_0000{i}.json" for i in range(3)]
    assert StudyResult.model_validate_json((out / "coverage.json").read_text()) == result
    cells = {(r.estimator, r.candidate) for r in result.coverage}
    for est in ("wis", "pdwis", "dr", "wdr", "fqe", "model_based"):
        assert {(est, c) for c in ("clinician", "no-treatment", "bc")} <= cells
    assert ("on-policy", "clinician") in cells
    assert all(r.n_replicates == 3 for r in result.coverage)
    assert {r.estimator for r in result.ranking} >= {"wis", "fqe"}
    assert result.choice is not None and result.choice.worse_candidates is not None
    text = (out / "coverage.md").read_text()
    for heading in ("## Truth", "## Coverage of the nominal 95% intervals", "## Ranking", "## Which estimator"):
        assert heading in text


def test_the_result_names_the_reference_weights_it_evaluated(study):
    out, result, gate = study
    ref = out / "reference"

    def digest(folder: Path) -> str:  # from the weight files' bytes, not from their manifest
        return sha256_json({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                            for p in sorted(folder.glob("*.safetensors"))})

    learned = {p.name: digest(p) for p in (ref / "policies").iterdir()}
    assert "bc" in learned
    assert result.reference_weights == {"clinician model": digest(ref / "behavior"), **learned}
    assert gate.reference_weights == result.reference_weights
    assert result.reference_weights["bc"] != result.reference_weights["clinician model"]
    assert f"bc `{result.reference_weights['bc'][:12]}`" in (out / "coverage.md").read_text()


def test_the_truth_is_the_softened_candidates_and_the_simulated_clinicians(study):
    _, result, _ = study
    assert result.truths["clinician"].soften_epsilon == 0.0
    assert "simulated clinician" in result.truths["clinician"].evaluated
    assert result.truths["no-treatment"].soften_epsilon == 0.01
    assert "softened with eps=0.01" in result.truths["no-treatment"].evaluated
    assert all(t.episodes == 100 and 0 < t.included <= 100 for t in result.truths.values())


def test_the_gate_study_reuses_the_replicates(study):
    out, coverage, gate = study
    assert gate.timing.replicates_run == 0 and gate.truths == coverage.truths
    rows = {r.candidate: r for r in gate.gate}
    assert set(rows) == {"no-treatment", "bc"}
    for r in rows.values():
        assert r.n_replicates == 3
        assert r.refused + r.passed == pytest.approx(1.0)
    assert gate.verdict is not None and gate.verdict.best_learned == "bc"
    assert "## Gate outcomes" in (out / "gate.md").read_text()
    replicate = json.loads((out / "replicates" / "rep_00000.json").read_text())
    assert replicate["candidates"]["bc"]["gate"]["status"] in ("pass", "fail", "inconclusive")
    assert "gate" not in replicate["candidates"]["clinician"]


def test_a_finished_study_is_re_summarised_against_more_precise_truths(study, tmp_path):
    out, coverage, _ = study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    again = run_study("coverage", tiny_config(truth_episodes=200), copy, jobs=1, log=lambda _: None)
    assert again.timing.replicates_run == 0 and again.n_replicates == 3
    assert {t.episodes for t in again.truths.values()} == {200} and again.truths != coverage.truths
    # the first 100 episodes are the same simulated patients: chunk 0 is shared, chunk 1 is new
    for c, t in again.truths.items():
        assert t.chunk_values[0] == coverage.truths[c].chunk_values[0] and len(t.chunk_values) == 2
    # a folder made before, whose fingerprint hashed the truths' episodes as set, resumes too
    legacy = core_io.sha256_json(tiny_config()._dump(truths_as_set=True))
    assert legacy != tiny_config().fingerprint()
    for path in [copy / "study.json", *(copy / "replicates").iterdir()]:
        path.write_text(json.dumps({**json.loads(path.read_text()), "fingerprint": legacy}))
    assert run_study("coverage", tiny_config(), copy, jobs=1, log=lambda _: None).timing.replicates_run == 0


def test_other_settings_in_the_same_folder_are_refused(study):
    out, _, _ = study
    with pytest.raises(InputError, match="other settings"):
        run_study("coverage", tiny_config(patients=61), out, jobs=1, log=lambda _: None)


def test_summaries_are_written_atomically(study, monkeypatch):
    out, _, _ = study
    before = (out / "coverage.json").read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(core_io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        run_study("coverage", tiny_config(), out, jobs=1, log=lambda _: None)
    monkeypatch.undo()
    assert (out / "coverage.json").read_bytes() == before
    assert not [p for p in out.rglob("*.tmp")]


def test_the_command_line(study, tmp_path):
    out, _, _ = study
    cfg = tmp_path / "study.json"
    cfg.write_text(tiny_config().model_dump_json())
    runner = CliRunner()
    ok = runner.invoke(app, ["coverage", "--config", str(cfg), "--out", str(out), "--jobs", "1", "-q"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    assert summary["replicates"] == 3 and summary["table"].endswith("coverage.md")
    bad = runner.invoke(app, ["gate", "--config", str(cfg), "--sim", "mimic", "--out", str(out), "-q"])
    assert bad.exit_code == 2 and "simulator" in bad.output


def test_settings_added_later_keep_old_fingerprints_until_they_are_used():
    base = tiny_config()
    old = base.model_dump(mode="json", exclude={"replicates"})  # what fingerprints hashed before the fields
    del old["usual_care"]
    del old["ope"]["adjust_for_history"]
    del old["ope"]["fqe"]["clip_to_value_bounds"]
    del old["ope"]["sensitivity_lambdas"]
    del old["gate"]["confounding_lambda"]
    del old["ope"]["fqe_interval"]
    del old["ope"]["fqe"]["schedule"], old["ope"]["fqe"]["steps_per_stage"]
    del old["ope"]["fqe"]["lr_schedule"]
    del old["ope"]["fqe"]["function_class"], old["ope"]["fqe"]["shared_penalty"], old["ope"]["fqe"]["action_penalty"]
    del old["ope"]["fqe"]["steps_per_iteration"]
    del old["ope"]["fqe"]["prior_spread"], old["ope"]["fqe"]["prior_where"]
    old["truth_episodes"], old["truth_chunk"] = 20000, 5000  # the defaults every study folder was made with
    assert base.fingerprint() == core_io.sha256_json(old)
    # the defaults' fingerprint, pinned: the R = 200 study folders since the ninth session carry it, and a
    # field added to StudyConfig, OPEConfig or FQEConfig must leave it alone while it holds the old behaviour
    assert StudyConfig().fingerprint() == "6ce55132151c619e0a83781a8a335a7444b89d09348efb1f0fb31381ad9d1a01"
    # no replicate depends on the truths' precision: a finished study can be re-summarised with more episodes
    assert tiny_config(truth_episodes=999, truth_chunk=333).fingerprint() == base.fingerprint()
    # folders made before hashed the truths' episodes as set (tiny_config's 100): they still resume
    old_style = dict(old, truth_episodes=100, truth_chunk=100)
    assert core_io.sha256_json(old_style) in base.accepted_fingerprints()
    backward = tiny_config(ope=base.ope.model_copy(update={"fqe": base.ope.fqe.model_copy(
        update={"schedule": "backward"})}))
    stages = tiny_config(ope=base.ope.model_copy(update={"fqe": base.ope.fqe.model_copy(
        update={"schedule": "backward", "steps_per_stage": 7})}))
    cosine = tiny_config(ope=base.ope.model_copy(update={"fqe": base.ope.fqe.model_copy(
        update={"lr_schedule": "cosine"})}))
    linear = tiny_config(ope=base.ope.model_copy(update={"fqe": FQEConfig(
        function_class="linear", hidden_sizes=())}))
    penalised = tiny_config(ope=base.ope.model_copy(update={"fqe": FQEConfig(
        function_class="linear", hidden_sizes=(), action_penalty=100.0)}))
    stepped = tiny_config(ope=base.ope.model_copy(update={"fqe": base.ope.fqe.model_copy(
        update={"steps_per_iteration": 32})}))
    prior = tiny_config(ope=base.ope.model_copy(update={"fqe": base.ope.fqe.model_copy(
        update={"prior_spread": 0.1})}))
    masked = tiny_config(ope=base.ope.model_copy(update={"fqe": base.ope.fqe.model_copy(
        update={"prior_spread": 0.1, "prior_where": "off_support"})}))
    at_steps = tiny_config(usual_care="at-steps")
    history = tiny_config(ope=base.ope.model_copy(update={"adjust_for_history": True}))
    clamp = tiny_config(ope=base.ope.model_copy(update={"fqe": base.ope.fqe.model_copy(
        update={"clip_to_value_bounds": True})}))
    msm = tiny_config(ope=base.ope.model_copy(update={"sensitivity_lambdas": (2.0,)}))
    rubin = tiny_config(ope=base.ope.model_copy(update={"fqe_interval": "rubin"}))
    assert len({base.fingerprint(), at_steps.fingerprint(), history.fingerprint(), clamp.fingerprint(),
                msm.fingerprint(), rubin.fingerprint(), backward.fingerprint(), stages.fingerprint(),
                cosine.fingerprint(), linear.fingerprint(), penalised.fingerprint(), stepped.fingerprint(),
                prior.fingerprint(), masked.fingerprint()}) == 14
    # the arm changes the policy-training data too: its own reference (and truth cache)
    assert base.reference_fingerprint("spec") != at_steps.reference_fingerprint("spec")
    assert base.reference_fingerprint("spec") == history.reference_fingerprint("spec")
    assert at_steps.simulator_settings(4.0).clinician.review_at_steps_h == 4
    assert base.simulator_settings(4.0).clinician.review_at_steps_h is None


def test_the_at_steps_arm_refuses_the_hourly_reference(study, tmp_path):
    out, _, _ = study
    with pytest.raises(InputError, match="other settings"):
        run_study("coverage", tiny_config(usual_care="at-steps"), tmp_path / "arm", ref_dir=out / "reference",
                  jobs=1, log=lambda _: None)


def test_the_markov_arm_doses_with_the_reference_clinician_model(study, tmp_path):
    import numpy as np
    import polars as pl

    from clinical_mborl.cohort import TransitionSet
    from clinical_mborl.cohort.build import build_cohort
    from clinical_mborl.simulators.sepsis.policies import UsualCare
    from clinical_mborl.studies.candidates import truth_policy
    from clinical_mborl.studies.reference import load_reference
    from clinical_mborl.studies.replicate import simulate_data_set
    from clinical_mborl.studies.truth import truth_key

    out, _, _ = study
    ref = load_reference(out / "reference")
    markov = tiny_config(usual_care="markov")
    # same reference as the hourly arm (its policy-training data and clinician model)
    assert markov.reference_fingerprint("spec") == tiny_config().reference_fingerprint("spec")
    simulate_data_set(markov, ref, seed=3, out_dir=tmp_path / "ehr")
    build_cohort(ref.spec, tmp_path / "ehr", tmp_path / "cohort", progress=False)
    ts = TransitionSet.load(tmp_path / "cohort")
    assert all(t.share_after_first_hour == 0.0 for t in ts.manifest.action_timing)
    # every full step's doses are the level doses the model's sampled level stands for (a stay that
    # ends inside its last step gets that step's fluid only pro rata)
    space = ts.manifest.action_space
    full = ts.frame.filter(~pl.col("done"))
    doses = full.select(d.name for d in space.dimensions).to_numpy()
    assert full.height > 100
    assert np.allclose(doses, space.doses_of(full["action"].to_numpy()), rtol=1e-6, atol=1e-6)
    # the clinician's truth is the model itself (its own cache entry); other candidates share theirs
    assert truth_policy("clinician", None, ref.behavior, 0.01, clinician_acts=True) is ref.behavior
    assert isinstance(truth_policy("clinician", None, ref.behavior, 0.01), UsualCare)
    assert truth_key("clinician", markov, "r") != truth_key("clinician", tiny_config(), "r")
    assert truth_key("bc", markov, "r") == truth_key("bc", tiny_config(), "r")


def test_truth_pairs_within_their_monte_carlo_error_are_listed_as_unresolved():
    from clinical_mborl.studies.study import unresolved_pairs
    from clinical_mborl.studies.truth import pool_chunks

    rng = np.random.default_rng(1)
    patients = rng.normal(0.0, 0.05, size=20)  # chunk k: the same simulated patients for every candidate

    def rec(shift: float):
        return pool_chunks("x", "x", 0.01, "", [{"value": 0.5 + shift + p + rng.normal(0, 0.002), "se": 0.05,
                                                 "included": 1000, "deaths": 0} for p in patients])

    truths = {"clinician": rec(0.0), "near": rec(0.001), "apart": rec(0.01), "far": rec(0.05)}
    # paired SE of a difference ~0.0006: 0.001 is within 1.96 SE, 0.01 is not
    assert {(p.higher, p.lower) for p in unresolved_pairs(truths)} == {("near", "clinician")}
    # without the chunk means (independent errors, SE ~0.016) 0.01 apart is not resolved either
    bare = {c: t.model_copy(update={"chunk_values": [], "chunk_included": []}) for c, t in truths.items()}
    assert {(p.higher, p.lower) for p in unresolved_pairs(bare)} == {
        ("near", "clinician"), ("apart", "clinician"), ("apart", "near")}


def test_selected_replicates_redraw_the_same_data_sets_and_skip_saved_ones(study, tmp_path):
    out, _, _ = study
    pilot = tmp_path / "pilot"
    log: list[str] = []
    assert run_selected_replicates(tiny_config(), pilot, out / "reference", [2, 2], jobs=1, log=log.append) == [2]
    assert sorted(p.name for p in (pilot / "replicates").iterdir()) == ["rep_00002.json"]
    mine, full = (json.loads((d / "replicates" / "rep_00002.json").read_text()) for d in (pilot, out))
    mine.pop("seconds"), full.pop("seconds")
    assert mine == full  # data set 2 of the pilot is data set 2 of the study, estimated alike
    assert run_selected_replicates(tiny_config(), pilot, out / "reference", [2], jobs=1, log=log.append) == []
    with pytest.raises(InputError, match="other settings"):
        run_selected_replicates(tiny_config(seed=5), pilot, out / "reference", [0], jobs=1, log=log.append)
    with pytest.raises(InputError, match="other settings"):  # the reference is checked too
        run_selected_replicates(tiny_config(seed=5), tmp_path / "other", out / "reference", [0], jobs=1,
                                log=log.append)
    with pytest.raises(InputError, match="start at 0"):
        run_selected_replicates(tiny_config(), pilot, out / "reference", [-1], jobs=1, log=log.append)


def test_the_study_header_states_fqe_s_priors(study):
    _, result, _ = study
    assert "prior" not in render_coverage(result).split("## Truth")[0]
    fqe = result.config.ope.fqe
    for where, words in (("everywhere", "at every dose"), ("off_support", "only at doses the clinician model")):
        ope = result.config.ope.model_copy(update={"fqe": fqe.model_copy(
            update={"prior_spread": 0.3, "prior_where": where, "hidden_sizes": (8,), "n_members": 2})})
        header = render_coverage(result.model_copy(update={"config": result.config.model_copy(
            update={"ope": ope})})).split("## Truth")[0]
        assert f"frozen random prior of spread 0.3 {words}" in header


def test_reference_weights_refuse_a_weights_file_that_no_longer_matches_its_manifest(study, tmp_path):
    out, result, _ = study
    ref = tmp_path / "reference"
    shutil.copytree(out / "reference", ref)
    assert reference_weights(ref) == result.reference_weights
    weights = ref / "policies" / "bc" / "policy.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern changed, the size kept
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError):
        reference_weights(ref)
