"""`clinical-mborl study coverage|gate`: simulation studies of the OPE intervals and of the gate.

Exit codes: 0 when the study ran (whether or not the targets were met: the tables say so);
2 for unusable options or inputs; 1 on an internal error.

Examples:
    clinical-mborl study coverage --sim sepsis --replicates 200 --patients 1000 \\
        --policy clinician --policy no-treatment --policy fluids-only --policy bc --policy cql-kl \\
        --out out/coverage --jobs 2
    clinical-mborl study gate --sim sepsis --replicates 100 --patients 1000 --out out/coverage
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from clinical_mborl.cli.common import QUIET, print_json, progress_enabled, run_library_call

app = typer.Typer(help="Simulation studies: interval coverage against the truth, gate refusal rates.",
                  no_args_is_help=True)

POLICY_HELP = ("Candidate: clinician, no-treatment, random, fluids-only, early-vasopressor, bc, cql, cql-kl or "
               "a protocol YAML path. Repeat for each (default: all built-ins).")


def _config(options: dict[str, Any], config_file: Path | None, gate_config: Path | None) -> Any:
    """A `StudyConfig` from a settings file (JSON or YAML) overridden by the given options."""
    import yaml
    from pydantic import ValidationError

    from clinical_mborl.core.errors import InputError
    from clinical_mborl.studies import StudyConfig

    base: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.is_file():
            raise InputError(f"--config {config_file}: file not found; pass a JSON or YAML StudyConfig.")
        loaded = yaml.safe_load(config_file.read_text())
        if not isinstance(loaded, dict):
            raise InputError(f"--config {config_file}: expected a mapping of StudyConfig fields.")
        base = loaded
    base.update({k: v for k, v in options.items() if v is not None})
    if gate_config is not None:
        from clinical_mborl.report.command import load_gate_config

        base["gate"] = load_gate_config(gate_config).model_dump(mode="json")
    try:
        return StudyConfig.model_validate(base)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid study options: {problems}") from None


def _estimators(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(v.strip() for v in text.split(",") if v.strip())


def _run(kind: str, options: dict[str, Any], out: Path, reference: Path | None, jobs: int | None,
         config_file: Path | None, gate_config: Path | None, resamples: int | None,
         estimators: str | None) -> dict[str, Any]:
    from clinical_mborl.studies import run_study

    config = _config(options, config_file, gate_config)
    ope_changes = {k: v for k, v in (("n_resamples", resamples), ("estimators", _estimators(estimators)))
                   if v is not None}
    if ope_changes:
        config = _config({**json.loads(config.model_dump_json()),
                          "ope": {**config.ope.model_dump(mode="json"), **ope_changes}}, None, None)

    def log(line: str) -> None:
        if progress_enabled():
            sys.stderr.write(line + "\n")

    result = run_study(kind, config, out, ref_dir=reference, jobs=jobs, log=log)  # type: ignore[arg-type]
    summary: dict[str, Any] = {"out": str(out), "table": str(out / f"{kind}.md"), "json": str(out / f"{kind}.json"),
                               "replicates": result.n_replicates, "errors": result.n_errors,
                               "wall_seconds": round(result.timing.wall_seconds, 1)}
    if result.choice is not None:
        summary.update(gate_estimator=result.choice.chosen, meets_targets=result.choice.meets_targets,
                       best_ranking=result.choice.best_ranking, best_spearman=result.choice.best_spearman)
    if result.verdict is not None:
        summary.update(worse_refused=result.verdict.all_worse_refused,
                       min_refusal_worse=result.verdict.min_refusal_worse, best_learned=result.verdict.best_learned,
                       best_learned_pass_share=result.verdict.best_learned_pass_share)
    return summary


def _command(kind: str):  # type: ignore[no-untyped-def]
    def command(
        sim: str = typer.Option("sepsis", "--sim", help="Simulator drawing the data sets (sepsis)."),
        replicates: int | None = typer.Option(None, "--replicates", help="Independent data sets R (default 200)."),
        patients: int | None = typer.Option(None, "--patients", help="Simulated patients N per data set (default 1000)."),
        policy: list[str] | None = typer.Option(None, "--policy", help=POLICY_HELP),
        out: Path = typer.Option(..., "--out", help="Study folder: replicates/, the table (.md) and .json."),
        seed: int | None = typer.Option(None, "--seed", help="Master seed (default 0)."),
        jobs: int | None = typer.Option(None, "--jobs", help="Worker processes (default: one per CPU core)."),
        reference: Path | None = typer.Option(None, "--reference", help="Reference folder (spec, policy-training "
                                              "data, learned candidates, truth cache) to share; default OUT/reference."),
        spec: Path | None = typer.Option(None, "--spec", help="Discrete cohort spec the study spec derives from."),
        truth_episodes: int | None = typer.Option(None, "--truth-episodes", help="Closed-loop episodes per candidate "
                                                  "(default 20000); no replicate depends on it, so re-running a finished "
                                                  "study with more re-summarises it against more precise truths."),
        training_patients: int | None = typer.Option(None, "--training-patients", help="Policy-training patients."),
        test_share: float | None = typer.Option(None, "--test-share", help="Share of each data set evaluated."),
        usual_care: str | None = typer.Option(None, "--usual-care", help="Who doses each data set: hourly (default; "
                                              "simulated clinicians who also act inside decision steps), "
                                              "at-steps (they act only at decision times) or markov (the "
                                              "reference clinician model acts on the cohort state)."),
        resamples: int | None = typer.Option(None, "--resamples", help="Patient bootstrap resamples B."),
        estimators: str | None = typer.Option(None, "--estimators", help="OPE estimators, comma-separated."),
        config_file: Path | None = typer.Option(None, "--config", help="StudyConfig fields (JSON/YAML); options "
                                                "given on the command line override them."),
        gate_config: Path | None = typer.Option(None, "--gate-config", help="Pre-registered gate (YAML/JSON); "
                                                "default: GateConfig defaults without the explanation check."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
    ) -> None:
        QUIET["value"] = QUIET["value"] or quiet
        options = {"simulator": sim, "replicates": replicates, "patients": patients,
                   "policies": tuple(policy) if policy else None, "seed": seed,
                   "spec_path": None if spec is None else str(spec), "truth_episodes": truth_episodes,
                   "training_patients": training_patients, "test_share": test_share, "usual_care": usual_care}
        print_json(run_library_call(lambda: _run(kind, options, out, reference, jobs, config_file, gate_config,
                                                 resamples, estimators)))

    command.__doc__ = ("Coverage of the OPE intervals against the simulator's truth, per estimator and "
                       "candidate, over R simulated data sets." if kind == "coverage" else
                       "Share of R simulated data sets in which the gate refuses or passes each candidate.")
    return command


app.command("coverage")(_command("coverage"))
app.command("gate")(_command("gate"))


def register(root: typer.Typer) -> None:
    """Add the `study` command group to the root app."""
    root.add_typer(app, name="study")
