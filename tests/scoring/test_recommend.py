"""`recommend` exports only behind a passing report for this exact policy and cohort."""

import polars as pl
import pytest
from typer.testing import CliRunner

from clinical_mborl.cli import app
from clinical_mborl.core.errors import RefusedError
from clinical_mborl.policies import train_policy
from clinical_mborl.policies.train import default_config
from clinical_mborl.report.audit_log import read_entries, verify_log
from clinical_mborl.report.build import build_audit_report
from clinical_mborl.report.render import write_report
from clinical_mborl.scoring.recommend import export_recommendations
from tests.report.factory import report_inputs, sentinel_cohort, toy_explanation, write_cohort


@pytest.fixture()
def audited(tmp_path):
    ts = write_cohort(sentinel_cohort(), tmp_path / "cohort")
    cfg = default_config("bc", n_updates=20, hidden=(8,), quiet=True, constraint={"support_threshold": 0.0})
    policy = train_policy("bc", ts, None, None, cfg)
    policy.save(tmp_path / "policy")
    inputs = report_inputs(ts, tmp_path / "policy", tmp_path / "cohort", toy_explanation())
    assert inputs.gate.passed
    ids = ts.frame["stay_id"].to_list() + ts.frame["patient_key"].to_list()
    write_report(build_audit_report(inputs), tmp_path / "report", identifiers=ids, figures=False)
    return ts, tmp_path


def test_export_after_passing_gate_is_written_and_logged(audited):
    ts, root = audited
    path = export_recommendations(root / "policy", root / "report", root / "cohort", root / "reco")
    frame = pl.read_csv(path)
    assert frame.height == ts.split("test").frame.height
    assert {"recommended_action", "recommended_iv_fluid_ml", "clinician_iv_fluid_ml"} <= set(frame.columns)
    assert not set(frame.columns) & {"stay_id", "patient_id"}
    log = root / "report" / "audit_log.jsonl"
    assert [e["event"] for e in read_entries(log)] == ["gate_decision", "recommendation_export"]
    assert verify_log(log).ok


def test_refused_after_one_policy_byte_changes_and_cli_exits_2(audited):
    _, root = audited
    weights = next((root / "policy").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(RefusedError, match="policy artifact differs"):
        export_recommendations(root / "policy", root / "report", root / "cohort", root / "reco")
    assert not (root / "reco" / "recommendations.csv").exists()
    res = CliRunner().invoke(app, ["recommend", "--policy", str(root / "policy"), "--report", str(root / "report"),
                                   "--cohort", str(root / "cohort"), "--out", str(root / "reco")])
    assert res.exit_code == 2 and "refused" in res.output


def test_refused_without_report(audited):
    _, root = audited
    with pytest.raises(RefusedError, match="no report.json"):
        export_recommendations(root / "policy", root / "missing", root / "cohort", root / "reco")
