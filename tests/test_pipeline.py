"""The whole pipeline (what `make demo` runs) end to end on a tiny simulated cohort."""

import json

import pytest
import torch
from typer.testing import CliRunner

from clinical_mborl.cli import app
from clinical_mborl.pipeline import PipelineConfig, run_pipeline

TINY = PipelineConfig(
    patients=160,
    seed=3,
    behavior={"n_folds": 2, "hidden_sizes": (8,), "max_epochs": 2},
    dynamics={"hidden_sizes": (16, 16), "n_members": 3, "n_elites": 2, "max_epochs": 2},
    policy={"n_updates": 30, "hidden": (16,), "rollout_batch": 64, "rollout_every": 10},
    ope={"n_resamples": 100, "model_rollouts": 1, "fqe": {"hidden_sizes": (16,), "n_iterations": 2, "epochs_per_iteration": 1}},
    explain={"max_rows": 16, "shapley_samples": 4, "n_baselines": 4, "sanity_rows": 4, "sanity_repeats": 1,
             "gradient_shap_samples": 2},
)


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("serial") / "run"
    return run, run_pipeline(run, TINY, progress=False)


def test_pipeline_writes_every_artifact_and_refuses_recommendations_without_a_pass(serial_run, tmp_path):
    run, result = serial_run
    for name in ("ehr", "cohort", "behavior", "dynamics", "morel", "combo", "ope_morel", "explain_combo"):
        assert (run / name).is_dir(), name
    assert (run / "ope_morel" / "subgroups.json").is_file()
    for algo in ("morel", "combo"):
        report = json.loads((run / f"report_{algo}" / "report.json").read_text())
        assert report["gate"]["status"] == result.gate[algo]
        html = (run / f"report_{algo}" / "report.html").read_text()
        assert "http://" not in html and "https://" not in html
    compute = json.loads((run / "pipeline.json").read_text())["result"]["compute"]
    assert compute == result.compute
    assert compute["torch_threads"] == str(torch.get_num_threads())  # what the main-process fits used
    for algo in ("morel", "combo"):  # branches train single-threaded, and their manifests say so
        assert json.loads((run / algo / "manifest.json").read_text())["compute"]["torch_threads"] == "1"
    scores = (run / "scores" / "scores.csv").read_text().splitlines()
    assert len(scores) == 1 + 5  # morel, combo, clinician, no-treatment, random
    if result.gate["morel"] != "pass":
        res = CliRunner().invoke(app, ["recommend", "--policy", str(run / "morel"), "--report",
                                       str(run / "report_morel"), "--cohort", str(run / "cohort"),
                                       "--behavior", str(run / "behavior"), "--out", str(tmp_path / "reco")])
        assert res.exit_code == 2 and "refused" in res.output
        assert not (tmp_path / "reco" / "recommendations.csv").exists()


def _science(run):
    """Every number the run produced: scores, OPE reports, report.json without its timestamp."""
    out = {"scores.csv": (run / "scores" / "scores.csv").read_text()}
    for path in sorted(run.glob("**/ope.json")) + sorted(run.glob("**/subgroups.json")):
        out[str(path.relative_to(run))] = path.read_text()
    for algo in ("morel", "combo"):
        report = json.loads((run / f"report_{algo}" / "report.json").read_text())
        report.pop("generated_at")
        out[f"report_{algo}"] = report
    return out


def test_parallel_branches_give_the_serial_numbers(serial_run, tmp_path):
    run, result = serial_run
    parallel = run_pipeline(tmp_path / "parallel", TINY.model_copy(update={"jobs": 2}), progress=False)
    assert parallel.gate == result.gate
    serial, side_by_side = _science(run), _science(tmp_path / "parallel")
    assert len(serial) == 1 + 5 + 2 + 2 + 2  # scores; scores/ope/<NN>; ope_<algo>: ope.json, subgroups; reports
    assert side_by_side == serial
    assert set(parallel.timings_s) == set(result.timings_s)
