"""Fixtures for the report tests: a sentinel-id toy cohort on disk, a policy artifact, an explanation."""

from __future__ import annotations

from pathlib import Path

import pytest

from .factory import (
    report_inputs,
    sentinel_cohort,
    toy_explanation,
    with_flow,
    write_cohort,
    write_policy,
)


@pytest.fixture(scope="session")
def explanation_summary():
    return toy_explanation()


@pytest.fixture()
def workspace(tmp_path: Path, explanation_summary):
    """(TransitionSet, policy_dir, cohort_dir, ReportInputs) with sentinel identifiers."""
    ts = write_cohort(sentinel_cohort(), tmp_path / "cohort")
    policy = write_policy(tmp_path / "policy")
    inputs = report_inputs(ts, policy, tmp_path / "cohort", explanation_summary, manifest=with_flow(ts.manifest))
    return ts, policy, tmp_path / "cohort", inputs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, explanation_summary):
    """A complete report written once with figures: (paths, AuditReport, identifiers)."""
    from clinical_mborl.report.build import build_audit_report
    from clinical_mborl.report.render import write_report

    root = tmp_path_factory.mktemp("rendered")
    ts = write_cohort(sentinel_cohort(), root / "cohort")
    policy = write_policy(root / "policy")
    inputs = report_inputs(ts, policy, root / "cohort", explanation_summary, manifest=with_flow(ts.manifest))
    report = build_audit_report(inputs)
    ids = ts.frame["stay_id"].to_list() + ts.frame["patient_key"].to_list()
    return write_report(report, root / "report", identifiers=ids), report, ids
