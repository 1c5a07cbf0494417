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

STREAMING_HELP = ("Check the rules on lazy scans instead of reading the tables into memory: the same report, for "
                  "extracts larger than memory (faster on parquet, slower on CSV, which is parsed once per pass).")


def _validate(ehr: Path, out: Path | None, streaming: bool) -> None:
    from clinical_mborl.core.errors import ValidationFailed
    from clinical_mborl.core.io import atomic_write_json
    from clinical_mborl.ehr.scan_validate import scan_validate_folder
    from clinical_mborl.ehr.validate import validate_folder

    report = scan_validate_folder(ehr) if streaming else validate_folder(ehr)
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
    streaming: bool = typer.Option(False, "--streaming", help=STREAMING_HELP),
) -> None:
    """Check the canonical EHR tables; exit 0 if valid, 2 with every violation listed otherwise.

    Example: clinical-mborl cohort validate --ehr data/ehr --out validation.json
    """
    run_library_call(lambda: _validate(ehr, out, streaming))


# --- cohort build ----------------------------------------------------------------------------


def _build(spec_path: Path, ehr: Path, out: Path, validate: bool, streaming: bool) -> None:
    from clinical_mborl.cli.common import progress_enabled
    from clinical_mborl.cohort import load_cohort_spec
    from clinical_mborl.cohort.build import build_cohort

    spec = load_cohort_spec(spec_path)
    manifest = build_cohort(spec, ehr, out, progress=progress_enabled(), validate=validate,
                            streaming_validation=streaming)
    included = sum(c.stays for c in manifest.counts.values())
    typer.echo(f"cohort {spec.name}: {manifest.stays_in} stays in, {included} included")
    for name, c in manifest.counts.items():
        typer.echo(f"  {name:<5} patients={c.patients} stays={c.stays} transitions={c.transitions} deaths={c.deaths}")
    typer.echo(f"written to {out} (transitions sha256 {manifest.transitions_sha256[:12]}...)")


@app.command("build")
def build(
    spec: Path = typer.Argument(..., help="Cohort spec YAML, e.g. cohorts/sepsis_fluids_vasopressors.yaml."),
    ehr: Path = typer.Option(..., "--ehr", help="Folder with stays, measurements, treatments (.parquet or .csv)."),
    out: Path = typer.Option(..., "--out", help="Output folder for transitions.parquet and manifest.json."),
    validate: bool = typer.Option(True, "--validate/--no-validate",
                                  help="Validate the tables first (reads them into memory unless --streaming)."),
    streaming: bool = typer.Option(False, "--streaming", help=STREAMING_HELP),
) -> None:
    """Build MDP transitions from canonical EHR tables (CONTRACTS.md §3); exit 2 on bad input.

    Example: clinical-mborl cohort build cohorts/sepsis_fluids_vasopressors.yaml --ehr data/ehr --out out/cohort
    """
    run_library_call(lambda: _build(spec, ehr, out, validate, streaming))
