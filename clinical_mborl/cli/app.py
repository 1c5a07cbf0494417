"""Root typer app; each command group registers itself here."""

from __future__ import annotations

import typer

from clinical_mborl import __version__
from clinical_mborl.cli.common import QUIET

app = typer.Typer(
    name="clinical-mborl",
    help="Learn and audit dosing policies from EHR with model-based offline RL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Silence progress bars."),
) -> None:
    QUIET["value"] = quiet


@app.command()
def version() -> None:
    """Print the package version."""
    typer.echo(__version__)


def _register() -> None:
    # Command groups (one module each). Imported here so `clinical_mborl.cli.app` stays the root.
    from clinical_mborl.cli import (
        cohort_cmd,
        demo_cmd,
        evaluate_cmd,
        explain_cmd,
        recommend_cmd,
        report_cmd,
        schemas_cmd,
        score_cmd,
        simulate_cmd,
        study_cmd,
        train_cmd,
    )

    app.add_typer(cohort_cmd.app, name="cohort")
    app.add_typer(schemas_cmd.app, name="schemas")
    app.add_typer(train_cmd.app, name="train")
    for module in (simulate_cmd, evaluate_cmd, explain_cmd, report_cmd, score_cmd, demo_cmd, recommend_cmd,
                   study_cmd):
        module.register(app)


_register()


def main() -> None:
    app()
