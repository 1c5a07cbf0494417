"""`recommend_guard`: nothing is recommended unless a passing report covers this exact policy and cohort.

Refusals (RefusedError, exit code 2) list every reason: no report.json; a report that does not
parse; a gate that did not pass; a policy artifact or cohort whose sha256 differs from the one
recorded in the report (any byte changed); an audit log that is missing, broken, or holds no
passing decision for this exact report.json (an edited report is refused).

>>> recommend_guard("policy/", "report/", "cohort/")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_mborl.core.errors import InputError, RefusedError
from clinical_mborl.core.io import sha256_file
from clinical_mborl.report.audit_log import append_entry, read_entries, verify_log
from clinical_mborl.report.fingerprint import (
    diff_fingerprints,
    fingerprint_cohort,
    fingerprint_policy,
)
from clinical_mborl.report.model import AuditReport
from clinical_mborl.report.render import AUDIT_LOG, REPORT_JSON


@dataclass(frozen=True)
class GuardResult:
    """What an export of recommendations is bound to."""

    report_sha256: str
    policy_name: str
    audit_log: Path


def _refuse(reasons: list[str]) -> RefusedError:
    lines = "\n".join(f"  - {r}" for r in reasons)
    return RefusedError(
        f"recommendations refused ({len(reasons)} reason(s)):\n{lines}\n"
        "Fix: re-run `clinical-mborl report` for this exact policy artifact and cohort, and export only "
        "when its gate passes."
    )


def _load_report(report_dir: Path) -> tuple[AuditReport, str]:
    path = report_dir / REPORT_JSON
    if not path.is_file():
        raise _refuse([f"no {REPORT_JSON} in {report_dir}: the policy has not been audited"])
    try:
        report = AuditReport.model_validate_json(path.read_text())
    except ValueError:
        raise _refuse([f"{path} is not a valid audit report (edited or from another version)"]) from None
    return report, sha256_file(path)


def _log_reasons(log_path: Path, report_sha: str) -> list[str]:
    check = verify_log(log_path)
    if not log_path.is_file():
        return [f"audit log {log_path} not found: the report's gate decision was never recorded"]
    if not check.ok:
        return [f"audit log {log_path} is broken: {p}" for p in check.problems[:3]]
    recorded = [e for e in read_entries(log_path)
                if e.get("event") == "gate_decision" and e.get("payload", {}).get("report_sha256") == report_sha]
    if not recorded:
        return ["report.json does not match any recorded gate decision (it was edited after it was written)"]
    if not recorded[-1]["payload"].get("passed"):
        return ["the audit log records this report's gate as not passed"]
    return []


def recommend_guard(policy_dir: str | Path, report_dir: str | Path, cohort_dir: str | Path,
                    audit_log: str | Path | None = None) -> GuardResult:
    """Return the binding of an allowed export, or raise RefusedError with every reason."""
    report_dir = Path(report_dir)
    report, report_sha = _load_report(report_dir)
    reasons: list[str] = []
    if not report.gate.passed:
        reasons.append(f"gate status '{report.gate.status}'")
        reasons += [f"gate: {r}" for r in report.gate.reasons]
    try:
        changed = diff_fingerprints(report.reproducibility.policy, fingerprint_policy(policy_dir))
        if changed:
            reasons.append(f"policy artifact differs from the audited one (files changed, added or removed: {', '.join(changed)})")
    except InputError as exc:
        reasons.append(str(exc))
    try:
        cohort = fingerprint_cohort(cohort_dir)
        recorded = report.reproducibility.cohort
        for field in ("manifest_hash", "manifest_file_sha256", "transitions_sha256"):
            if getattr(cohort, field) != getattr(recorded, field):
                reasons.append(f"cohort differs from the audited one ({field} changed)")
    except InputError as exc:
        reasons.append(str(exc))
    log_path = Path(audit_log) if audit_log is not None else report_dir / AUDIT_LOG
    reasons += _log_reasons(log_path, report_sha)
    if reasons:
        if log_path.is_file() and verify_log(log_path).ok:
            append_entry(log_path, "recommendation_refused", {"report_sha256": report_sha, "reasons": reasons})
        raise _refuse(reasons)
    return GuardResult(report_sha256=report_sha, policy_name=report.policy_name, audit_log=log_path)


def record_export(guard: GuardResult, recommendations_path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Append a `recommendation_export` entry (hash of the exported file) to the audit log."""
    path = Path(recommendations_path)
    append_entry(guard.audit_log, "recommendation_export", {
        "report_sha256": guard.report_sha256,
        "policy_name": guard.policy_name,
        "file": path.name,
        "file_sha256": sha256_file(path),
        **(extra or {}),
    })
