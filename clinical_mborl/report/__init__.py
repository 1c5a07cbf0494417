"""Audit report, recommendation gate, hash-chained audit log and the recommend guard.

Flow: `ReportInputs` -> `build_audit_report` -> `AuditReport` -> `write_report` (report.json,
self-contained report.html, gate decision appended to the audit log); `recommend_guard` refuses
exports unless a passing report covers the exact policy artifact and cohort.
"""

from clinical_mborl.report.audit_log import append_entry, verify_log
from clinical_mborl.report.build import build_audit_report
from clinical_mborl.report.collect import (
    characteristics_from_transitions,
    dose_input,
    evidence_from_ope,
    ope_inputs,
    review_cases,
    trajectory_input,
)
from clinical_mborl.report.command import load_gate_config, report_from_artifacts
from clinical_mborl.report.fingerprint import (
    CohortFingerprint,
    PolicyFingerprint,
    fingerprint_cohort,
    fingerprint_policy,
)
from clinical_mborl.report.gate import (
    ExplanationEvidence,
    GateCheck,
    GateConfig,
    GateDecision,
    GateEvidence,
    OverlapEvidence,
    PairedEstimate,
    SubgroupEvidence,
    SupportEvidence,
    evaluate_gate,
    overlap_evidence,
    support_evidence,
)
from clinical_mborl.report.guard import GuardResult, recommend_guard, record_export
from clinical_mborl.report.inputs import ReportInputs
from clinical_mborl.report.model import AuditReport
from clinical_mborl.report.render import ReportPaths, render_html, write_report
from clinical_mborl.report.suppress import suppress_counts

__all__ = [
    "AuditReport",
    "ReportPaths",
    "characteristics_from_transitions",
    "dose_input",
    "evidence_from_ope",
    "load_gate_config",
    "ope_inputs",
    "report_from_artifacts",
    "review_cases",
    "trajectory_input",
    "CohortFingerprint",
    "ExplanationEvidence",
    "GateCheck",
    "GateConfig",
    "GateDecision",
    "GateEvidence",
    "GuardResult",
    "OverlapEvidence",
    "PairedEstimate",
    "PolicyFingerprint",
    "ReportInputs",
    "SubgroupEvidence",
    "SupportEvidence",
    "append_entry",
    "build_audit_report",
    "evaluate_gate",
    "fingerprint_cohort",
    "fingerprint_policy",
    "overlap_evidence",
    "recommend_guard",
    "record_export",
    "render_html",
    "suppress_counts",
    "support_evidence",
    "verify_log",
    "write_report",
]
