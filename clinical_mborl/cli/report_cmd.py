"""`clinical-mborl report`: the audit report (report.html, report.json) with the gate decision.

Example:
    clinical-mborl report --policy out/morel --cohort out/cohort --behavior out/behavior \\
        --ope out/ope --dynamics out/dynamics --explanation out/explain --out out/report
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clinical_mborl.cli.common import print_json, run_library_call


def _run(**kwargs: Any) -> dict[str, Any]:
    from clinical_mborl.report.command import report_from_artifacts

    paths = report_from_artifacts(**kwargs)
    import json

    decision = json.loads(paths.json.read_text())["gate"]
    return {"report_html": str(paths.html), "report_json": str(paths.json), "audit_log": str(paths.audit_log),
            "gate": decision["status"], "reasons": [c["name"] for c in decision["checks"]
                                                     if c["status"] in ("fail", "inconclusive")]}


def report(
    policy: str = typer.Option(..., "--policy", help="Policy artifact folder, protocol YAML, or a named baseline."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder (transitions.parquet + manifest.json)."),
    behavior: Path = typer.Option(..., "--behavior", help="Behaviour-policy artifact (`train behavior`)."),
    ope: Path = typer.Option(..., "--ope", help="Folder with ope.json (`evaluate`), or the file."),
    out: Path = typer.Option(..., "--out", help="Folder for report.html, report.json and the audit log."),
    dynamics: Path | None = typer.Option(None, "--dynamics", help="Dynamics artifact (holdout quality)."),
    explanation: Path | None = typer.Option(None, "--explanation", help="Folder written by `explain`."),
    subgroups: Path | None = typer.Option(None, "--subgroups", help="JSON/YAML list of subgroup results."),
    gate_config: Path | None = typer.Option(None, "--gate-config", help="Pre-registered gate settings (YAML/JSON)."),
    audit_log: Path | None = typer.Option(None, "--audit-log", help="Audit log (default OUT/audit_log.jsonl)."),
) -> None:
    """Evaluate the gate and write the self-contained audit report; prints the paths and the decision."""
    print_json(run_library_call(lambda: _run(
        policy=policy, cohort=cohort, behavior=behavior, ope=ope, out=out, dynamics=dynamics,
        explanation=explanation, subgroups=subgroups, gate_config=gate_config, audit_log=audit_log)))


def register(app: typer.Typer) -> None:
    app.command("report")(report)
