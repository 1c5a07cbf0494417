"""recommend_guard refuses unless a passing report covers this exact policy artifact and cohort."""

import json

import pytest

from clinical_mborl.core.errors import RefusedError
from clinical_mborl.report.audit_log import read_entries
from clinical_mborl.report.build import build_audit_report
from clinical_mborl.report.gate import GateConfig, evaluate_gate
from clinical_mborl.report.guard import recommend_guard, record_export
from clinical_mborl.report.render import write_report

from .factory import evidence, ope_entries, subgroups


def _write(workspace, tmp_path, inputs=None):
    ts, policy, cohort, default = workspace
    report = build_audit_report(inputs or default)
    write_report(report, tmp_path / "report", identifiers=ts.frame["stay_id"].to_list(), figures=False)
    return policy, tmp_path / "report", cohort


def _flip_byte(path, offset=-3):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_passing_report_allows_export_and_logs_it(workspace, tmp_path):
    policy, report, cohort = _write(workspace, tmp_path)
    guard = recommend_guard(policy, report, cohort)
    out = tmp_path / "recs.csv"
    out.write_text("case,recommended\n")
    record_export(guard, out)
    events = [e["event"] for e in read_entries(report / "audit_log.jsonl")]
    assert events == ["gate_decision", "recommendation_export"]


def test_refused_without_report(workspace, tmp_path):
    _, policy, cohort, _ = workspace
    with pytest.raises(RefusedError, match="no report.json") as exc:
        recommend_guard(policy, tmp_path / "nothing", cohort)
    assert exc.value.exit_code == 2


def test_refused_when_gate_failed(workspace, tmp_path, explanation_summary):
    ts, policy, cohort, inputs = workspace
    n = inputs.cohort.counts["test"].patients
    ope = ope_entries(n, diff=-0.2)
    failed = evaluate_gate(evidence(ope, subgroups({"sex": {"F": n}}), explanation_summary), GateConfig())
    assert not failed.passed
    _write(workspace, tmp_path, inputs.model_copy(update={"gate": failed, "ope": ope}))
    with pytest.raises(RefusedError, match="gate status 'fail'") as exc:
        recommend_guard(policy, tmp_path / "report", cohort)
    assert "margin (wdr)" in str(exc.value)
    assert read_entries(tmp_path / "report" / "audit_log.jsonl")[-1]["event"] == "recommendation_refused"


@pytest.mark.parametrize("victim", ["weights.safetensors", "config.json", "manifest.json"])
def test_refused_after_one_byte_of_the_policy_changes(workspace, tmp_path, victim):
    policy, report, cohort = _write(workspace, tmp_path)
    recommend_guard(policy, report, cohort)
    _flip_byte(policy / victim)
    with pytest.raises(RefusedError, match="policy artifact differs") as exc:
        recommend_guard(policy, report, cohort)
    assert victim in str(exc.value)


def test_refused_when_a_file_is_added_to_the_policy(workspace, tmp_path):
    policy, report, cohort = _write(workspace, tmp_path)
    (policy / "extra.json").write_text("{}")
    with pytest.raises(RefusedError, match="extra.json"):
        recommend_guard(policy, report, cohort)


@pytest.mark.parametrize("victim,field", [("transitions.parquet", "transitions_sha256"),
                                          ("manifest.json", "manifest_file_sha256")])
def test_refused_after_the_cohort_changes(workspace, tmp_path, victim, field):
    policy, report, cohort = _write(workspace, tmp_path)
    path = cohort / victim
    if victim == "manifest.json":
        path.write_text(path.read_text() + " ")
    else:
        _flip_byte(path, offset=len(path.read_bytes()) // 2)
    with pytest.raises(RefusedError, match=field):
        recommend_guard(policy, report, cohort)


def test_refused_when_the_manifest_content_changes(workspace, tmp_path):
    policy, report, cohort = _write(workspace, tmp_path)
    m = json.loads((cohort / "manifest.json").read_text())
    m["gamma"] = 0.5
    (cohort / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(RefusedError, match="manifest_hash"):
        recommend_guard(policy, report, cohort)


def test_refused_when_report_edited_to_pass(workspace, tmp_path, explanation_summary):
    ts, policy, cohort, inputs = workspace
    n = inputs.cohort.counts["test"].patients
    failed = evaluate_gate(evidence(ope_entries(n, diff=-0.2), [], explanation_summary), GateConfig())
    _write(workspace, tmp_path, inputs.model_copy(update={"gate": failed}))
    path = tmp_path / "report" / "report.json"
    data = json.loads(path.read_text())
    data["gate"]["passed"], data["gate"]["status"] = True, "pass"
    for c in data["gate"]["checks"]:
        c["status"] = "pass"
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(RefusedError, match="does not match any recorded gate decision"):
        recommend_guard(policy, tmp_path / "report", cohort)


def test_refused_when_audit_log_missing_or_tampered(workspace, tmp_path):
    policy, report, cohort = _write(workspace, tmp_path)
    log = report / "audit_log.jsonl"
    log.write_text(log.read_text().replace('"passed": true', '"passed": false'))
    with pytest.raises(RefusedError, match="audit log .* is broken"):
        recommend_guard(policy, report, cohort)
    log.unlink()
    with pytest.raises(RefusedError, match="audit log .* not found"):
        recommend_guard(policy, report, cohort)
