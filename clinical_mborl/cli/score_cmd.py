"""`clinical-mborl score`: rank many candidate policies; writes `scores.csv` + `scores.html` (CONTRACTS.md §5).

Exit codes: 0 when at least one candidate was scored (rows that failed say why, status "error");
2 when none could be scored or the input is unusable (the table is still written when the
candidates were reached); 1 on an internal error.

Example:
    clinical-mborl score --policy out/morel --policy out/combo --policy clinician \\
        --policy no-treatment --cohort out/cohort --behavior out/behavior --dynamics out/dynamics \\
        --out out/scores --jobs 2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clinical_mborl.cli.common import (
    QUIET,
    parse_lambdas,
    parse_names,
    print_json,
    progress_enabled,
    run_library_call,
)


def _config(options: dict[str, Any], gate_config: Path | None, jobs: int | None) -> Any:
    """A `ScoringConfig` from the command-line options and the (pre-registered) gate file."""
    from pydantic import ValidationError

    from clinical_mborl.core.errors import InputError
    from clinical_mborl.ope import OPEConfig
    from clinical_mborl.report.command import load_gate_config
    from clinical_mborl.scoring import ScoringConfig, screening_gate_config

    gate = load_gate_config(gate_config) if gate_config is not None else screening_gate_config()
    try:
        ope = OPEConfig(**options, level=gate.level, support_threshold=gate.support_threshold)
        return ScoringConfig(ope=ope, gate=gate, jobs=jobs)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid scoring options: {problems}") from None


def _run(policies: list[str], cohort: Path, behavior: Path, dynamics: Path | None, out: Path,
         config: Any, audit_log: Path | None) -> dict[str, Any]:
    """Load the cohort and models, call `score_candidates`, return a short summary for stdout."""
    from clinical_mborl.behavior import ClinicianPolicy
    from clinical_mborl.cohort import TransitionSet
    from clinical_mborl.core.errors import InputError
    from clinical_mborl.dynamics import DynamicsEnsemble
    from clinical_mborl.scoring import SCORES_CSV, SCORES_HTML, score_candidates

    transitions = TransitionSet.load(cohort)
    clinician = ClinicianPolicy.load(behavior)
    ensemble = DynamicsEnsemble.load(dynamics) if dynamics is not None else None
    table = score_candidates(policies, transitions, clinician, ensemble, config, out,
                             progress=progress_enabled(), audit_log=audit_log)
    if table.n_scored == 0:
        reasons = "; ".join(f"{r.candidate}: {r.reasons[0] if r.reasons else 'unknown'}" for r in table.rows)
        raise InputError(f"score: no candidate could be scored ({reasons}); the table with every reason is in "
                         f"{out / SCORES_CSV}. Fix the candidate paths or models and run again.")
    return {
        "scores_csv": str(out / SCORES_CSV), "scores_html": str(out / SCORES_HTML),
        "primary_estimator": table.primary_estimator,
        "ranking": [{"rank": r.rank, "candidate": r.candidate, "status": r.status} for r in table.rows],
    }


def score(
    policy: list[str] = typer.Option(..., "--policy", help="Candidate: policy artifact folder, protocol YAML, "
                                     "clinician, random or no-treatment. Repeat for each candidate."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder (transitions.parquet + manifest.json)."),
    behavior: Path = typer.Option(..., "--behavior", help="Behaviour-policy artifact (`train behavior`)."),
    dynamics: Path | None = typer.Option(None, "--dynamics", help="Dynamics ensemble artifact: model-based "
                                         "estimate and MOReL HALT rates (skipped without it)."),
    out: Path = typer.Option(..., "--out", help="Folder for scores.csv, scores.html, per-candidate ope.json."),
    jobs: int | None = typer.Option(None, "--jobs", help="Worker processes (default: one per candidate, at "
                                    "most the CPU count; 1 = serial)."),
    split: str = typer.Option("test", "--split", help="Held-out evaluation split(s), comma-separated."),
    estimators: str = typer.Option("wis,pdwis,dr,wdr,fqe,model_based", "--estimators",
                                   help="Estimators to run, comma-separated (must include the gate's primary ones)."),
    resamples: int = typer.Option(2000, "--resamples", help="Patient bootstrap resamples (same for every candidate)."),
    method: str = typer.Option("bca", "--method", help="bca or percentile."),
    fqe_interval: str = typer.Option(
        "bootstrap", "--fqe-interval", help="FQE's interval with refitted Q-members: bootstrap (patient "
        "resamples paired with members) or rubin (Rubin's rules over the members: wider; docs/coverage.md)."),
    soften: float = typer.Option(0.01, "--soften", help="Mix this share of the clinician into each candidate."),
    clip: float | None = typer.Option(None, "--clip", help="Cap on cumulative importance ratios."),
    rollouts: int = typer.Option(10, "--rollouts", help="Model rollouts per evaluation stay."),
    seed: int = typer.Option(0, "--seed", help="Seed of resamples, HCOPE split, FQE and rollouts."),
    sensitivity: str = typer.Option(
        "", "--sensitivity", help="Comma-separated Lambdas > 1 (e.g. 1.1,1.25): adds fqe_msm<Lambda> columns, "
        "FQE's interval and paired lower bound if the clinicians' real odds of each action differ from the "
        "clinician model's by at most Lambda (unobserved confounding). Not gate evidence."),
    gate_config: Path | None = typer.Option(None, "--gate-config", help="Pre-registered gate (YAML/JSON), used "
                                            "verbatim; default: the screening gate (no subgroup/explanation checks)."),
    audit_log: Path | None = typer.Option(None, "--audit-log", help="Audit log (default OUT/audit_log.jsonl)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Silence the progress bar."),
) -> None:
    """Evaluate, gate-check and rank candidate policies; write scores.csv and scores.html.

    Example: clinical-mborl score --policy out/morel --policy clinician --cohort out/cohort
    --behavior out/behavior --dynamics out/dynamics --out out/scores
    """
    QUIET["value"] = QUIET["value"] or quiet

    def call() -> dict[str, Any]:
        options = {
            "eval_splits": parse_names(split, "--split"), "estimators": parse_names(estimators, "--estimators"),
            "n_resamples": resamples, "method": method, "fqe_interval": fqe_interval, "soften_epsilon": soften,
            "clip": clip,
            "model_rollouts": rollouts, "seed": seed, "fqe": {"seed": seed},
            "sensitivity_lambdas": parse_lambdas(sensitivity),
        }
        return _run(policy, cohort, behavior, dynamics, out, _config(options, gate_config, jobs), audit_log)

    print_json(run_library_call(call))


def register(root: typer.Typer) -> None:
    """Add the top-level `score` command to the root app."""
    root.command("score")(score)
