"""`clinical-mborl schemas export`: regenerate `schemas/` from the pydantic contracts."""

from __future__ import annotations

from pathlib import Path

import typer

from clinical_mborl.cli.common import run_library_call

app = typer.Typer(help="JSON Schemas of the published contracts.", no_args_is_help=True)


@app.command("export")
def export(out: Path = typer.Option(Path("schemas"), "--out", help="Folder to write *.schema.json into.")) -> None:
    """Write one JSON Schema per contract (EHR rows, CohortSpec, cohort manifest, artifact manifest)."""
    from clinical_mborl.schemas import export_schemas

    paths = run_library_call(lambda: export_schemas(out))
    for p in paths:
        typer.echo(str(p))
