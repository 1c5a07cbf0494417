"""End to end through the CLI: explain -> report -> recommend guard, on a toy cohort with sentinel ids."""

import json

import pytest
import torch
from typer.testing import CliRunner

from clinical_mborl.behavior import BehaviorConfig, fit_behavior
from clinical_mborl.cli.app import app
from clinical_mborl.core.errors import RefusedError
from clinical_mborl.policies.constraints import ConstraintConfig
from clinical_mborl.policies.learned import LearnedPolicy
from clinical_mborl.policies.networks import build_network, network_spec
from clinical_mborl.report.guard import recommend_guard

from .factory import ope_report, sentinel_cohort, write_cohort

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ts = write_cohort(sentinel_cohort(80), root / "cohort")
    fit_behavior(ts, BehaviorConfig(n_folds=2, max_epochs=3)).save(root / "behavior")
    torch.manual_seed(0)
    spec = network_spec("discrete_q", 4, ts.n_actions, [16, 16])
    LearnedPolicy(name="toy-q", algo="cql", head="q", network=build_network(spec), network_spec=spec,
                  normalizer=ts.normalizer, feature_names=ts.feature_names, action_space=ts.manifest.action_space,
                  constraint=ConstraintConfig(support_threshold=0.0), cohort_manifest_hash=ts.manifest_hash,
                  seed=0).save(root / "policy")
    ope_report().model_copy(update={"fqe_steps_per_iteration": 140}).write(root / "ope")
    (root / "gate.yaml").write_text("subgroup_attributes: []\nprimary_estimators: [wdr]\n")
    return root, ts


def _invoke(*args):
    return CliRunner().invoke(app, ["-q", *map(str, args)])


def test_explain_report_and_guard(artifacts):
    root, ts = artifacts
    res = _invoke("explain", "--policy", root / "policy", "--cohort", root / "cohort", "--behavior",
                  root / "behavior", "--out", root / "explain", "--max-rows", 32, "--shapley-samples", 30)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["completeness"]["passed"]
    common = ["--policy", root / "policy", "--cohort", root / "cohort", "--behavior", root / "behavior",
              "--ope", root / "ope", "--explanation", root / "explain"]
    res = _invoke("report", *common, "--out", root / "failing")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["gate"] == "fail"  # no subgroup evidence under the default config
    with pytest.raises(RefusedError):
        recommend_guard(root / "policy", root / "failing", root / "cohort")
    res = _invoke("report", *common, "--gate-config", root / "gate.yaml", "--out", root / "passing")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["gate"] == "pass", res.stdout
    html = (root / "passing" / "report.html").read_text()
    assert "SENTINEL" not in html and "SENTINEL" not in (root / "passing" / "report.json").read_text()
    assert "Case A" in html
    limitations = json.loads((root / "passing" / "report.json").read_text())["limitations"]
    budget = [t for t in limitations if t.startswith("FQE's optimisation budget")]
    assert len(budget) == 1 and "140 Adam steps (outside the 28-32 steps" in budget[0]
    assert recommend_guard(root / "policy", root / "passing", root / "cohort").policy_name == "toy-q"


def test_explain_refuses_a_named_baseline(artifacts):
    root, _ = artifacts
    res = _invoke("explain", "--policy", "no-treatment", "--cohort", root / "cohort", "--out", root / "x")
    assert res.exit_code == 2 and "no network" in res.output


def test_report_bad_gate_config_is_exit_2(artifacts):
    root, _ = artifacts
    (root / "bad.yaml").write_text("ess_floor: -1\n")
    res = _invoke("report", "--policy", root / "policy", "--cohort", root / "cohort", "--behavior",
                  root / "behavior", "--ope", root / "ope", "--gate-config", root / "bad.yaml", "--out", root / "r")
    assert res.exit_code == 2, res.output
