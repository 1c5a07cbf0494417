"""`clinical-mborl recommend`: export recommendations only behind a passing, matching audit report."""

from __future__ import annotations

from pathlib import Path

import typer

from clinical_mborl.cli.common import run_library_call


def recommend(
    policy: Path = typer.Option(..., "--policy", help="The audited policy artifact folder."),
    report: Path = typer.Option(..., "--report", help="Folder with report.json from `clinical-mborl report`."),
    cohort: Path = typer.Option(..., "--cohort", help="The audited cohort folder."),
    out: Path = typer.Option(..., "--out", help="Folder for recommendations.csv."),
    behavior: Path | None = typer.Option(None, "--behavior", help="Behaviour-policy artifact (support column; "
                                         "needed for policies trained with a clinician support mask)."),
    split: str = typer.Option("test", "--split", help="Cohort split to recommend for."),
    audit_log: Path | None = typer.Option(None, "--audit-log", help="Audit log (default: REPORT/audit_log.jsonl)."),
) -> None:
    """Write recommendations.csv if the gate passed for this exact policy and cohort; otherwise exit 2
    with every reason."""
    from clinical_mborl.scoring.recommend import export_recommendations

    path = run_library_call(lambda: export_recommendations(policy, report, cohort, out, behavior_dir=behavior,
                                                           split=split, audit_log=audit_log))
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
