"""The whole pipeline (what `make demo` runs) end to end on a tiny simulated cohort."""

import json

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


def test_pipeline_writes_every_artifact_and_refuses_recommendations_without_a_pass(tmp_path):
    result = run_pipeline(tmp_path / "run", TINY, progress=False)
    run = tmp_path / "run"
    for name in ("ehr", "cohort", "behavior", "dynamics", "morel", "combo", "ope_morel", "explain_combo"):
        assert (run / name).is_dir(), name
    assert (run / "ope_morel" / "subgroups.json").is_file()
    for algo in ("morel", "combo"):
        report = json.loads((run / f"report_{algo}" / "report.json").read_text())
        assert report["gate"]["status"] == result.gate[algo]
        html = (run / f"report_{algo}" / "report.html").read_text()
        assert "http://" not in html and "https://" not in html
    scores = (run / "scores" / "scores.csv").read_text().splitlines()
    assert len(scores) == 1 + 5  # morel, combo, clinician, no-treatment, random
    if result.gate["morel"] != "pass":
        res = CliRunner().invoke(app, ["recommend", "--policy", str(run / "morel"), "--report",
                                       str(run / "report_morel"), "--cohort", str(run / "cohort"),
                                       "--behavior", str(run / "behavior"), "--out", str(tmp_path / "reco")])
        assert res.exit_code == 2 and "refused" in res.output
        assert not (tmp_path / "reco" / "recommendations.csv").exists()
