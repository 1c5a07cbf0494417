"""`clinical-mborl cohort ...`: check canonical EHR tables and build cohorts from them."""

from __future__ import annotations

from pathlib import Path

import typer

from clinical_mborl.cli.common import run_library_call

app = typer.Typer(help="Validate canonical EHR tables and build cohorts.", no_args_is_help=True)


@app.callback()
def _cohort() -> None:
    """Validate canonical EHR tables and build cohorts (CONTRACTS.md §1-3)."""


# --- cohort validate -------------------------------------------------------------------------


def _validate(ehr: Path, out: Path | None) -> None:
    from clinical_mborl.core.errors import ValidationFailed
    from clinical_mborl.core.io import atomic_write_json
    from clinical_mborl.ehr.validate import validate_folder

    report = validate_folder(ehr)
    if out is not None:
        atomic_write_json(out, report.model_dump(mode="json"))
    typer.echo(f"EHR folder: {ehr}")
    typer.echo(report.describe())
    if out is not None:
        typer.echo(f"report written to {out}")
    if not report.ok:
        raise ValidationFailed(report.violation_objects(), context=f"EHR tables in {ehr}")


@app.command("validate")
def validate(
    ehr: Path = typer.Option(..., "--ehr", help="Folder with stays, measurements, treatments (.parquet or .csv)."),
    out: Path | None = typer.Option(None, "--out", help="Write the validation report as JSON here (atomically)."),
) -> None:
    """Check the canonical EHR tables; exit 0 if valid, 2 with every violation listed otherwise.

    Example: clinical-mborl cohort validate --ehr data/ehr --out validation.json
    """
    run_library_call(lambda: _validate(ehr, out))
