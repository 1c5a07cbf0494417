"""`clinical-mborl demo --out DIR`: the whole pipeline on a simulated cohort (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from clinical_mborl.cli.common import print_json, progress_enabled, run_library_call


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for every artifact of the run."),
    patients: int = typer.Option(3000, "--patients", help="Simulated ICU stays."),
    seed: int = typer.Option(0, "--seed", help="Seed of the whole run."),
    jobs: int = typer.Option(1, "--jobs", help="Worker processes: the learners' branches and the baselines' "
                             "evaluations side by side (the same numbers as 1)."),
) -> None:
    """Simulate -> cohort -> clinician model and dynamics -> MOReL and COMBO -> evaluate -> explain
    -> report -> score; ends with the path of the report."""
    from clinical_mborl.pipeline import PipelineConfig, run_pipeline

    config = PipelineConfig.demo(patients=patients, seed=seed, jobs=jobs)
    result = run_library_call(lambda: run_pipeline(out, config, progress=progress_enabled()))
    print_json(result.model_dump(mode="json"))
    for algo, path in result.reports.items():
        typer.echo(f"report ({algo}, gate: {result.gate[algo]}): {path}")
    typer.echo(f"scores: {result.scores}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
