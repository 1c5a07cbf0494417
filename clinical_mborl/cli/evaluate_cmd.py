"""`clinical-mborl evaluate`: off-policy evaluation of one policy; writes `ope.json` (CONTRACTS.md §5).

Example:
    clinical-mborl evaluate --policy out/combo --cohort out/cohort --behavior out/behavior \\
        --dynamics out/dynamics --out out/ope
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
    run_library_call,
)


def _run(policy: str, cohort: Path, behavior: Path, dynamics: Path | None, out: Path,
         options: dict[str, Any]) -> dict[str, Any]:
    """Load everything, call `evaluate_policy`, return a short summary for stdout."""
    from pydantic import ValidationError

    from clinical_mborl.behavior import ClinicianPolicy
    from clinical_mborl.cohort import TransitionSet
    from clinical_mborl.core.errors import InputError
    from clinical_mborl.dynamics import DynamicsEnsemble
    from clinical_mborl.ope import OPEConfig
    from clinical_mborl.ope.policy_eval import evaluate_policy
    from clinical_mborl.policies import load_policy

    try:
        config = OPEConfig(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid evaluation options: {problems}") from None
    transitions = TransitionSet.load(cohort)
    clinician = ClinicianPolicy.load(behavior)
    ensemble = DynamicsEnsemble.load(dynamics) if dynamics is not None else None
    target = load_policy(policy, transitions, clinician)
    report = evaluate_policy(target, transitions, clinician, ensemble, config, out_dir=out)

    def brief(e: Any) -> dict[str, Any]:
        return {k: getattr(e, k) for k in ("value", "ci_low", "ci_high", "lower_bound")}

    return {
        "ope_json": str(out / "ope.json"),
        "policy": report.policy,
        "n_patients": report.n_patients,
        "clinician": brief(report.clinician),
        "estimates": {e.estimator: {**brief(e), "ess": e.ess} for e in report.estimates},
        "minus_clinician": {d.estimator: brief(d) for d in report.differences},
        "high_confidence_lower_bound": report.high_confidence.lower_bound,
        "high_confidence_valid": report.high_confidence.valid,
        "sensitivity": {f"{b.lam:g}": {"lower": brief(b.lower), "upper": brief(b.upper),
                                       "minus_clinician_lower_bound": b.lower_difference.lower_bound}
                        for b in report.sensitivity},
        "skipped": report.skipped,
    }


def evaluate(
    policy: str = typer.Option(..., "--policy", help="Policy artifact folder, protocol YAML, clinician, "
                               "random or no-treatment."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder (transitions.parquet + manifest.json)."),
    behavior: Path = typer.Option(..., "--behavior", help="Behaviour-policy artifact (`train behavior`)."),
    dynamics: Path | None = typer.Option(None, "--dynamics", help="Dynamics ensemble artifact; without "
                                         "it the model-based estimate is skipped."),
    out: Path = typer.Option(..., "--out", help="Folder for ope.json (created if missing)."),
    split: str = typer.Option("test", "--split", help="Evaluation split(s), comma-separated."),
    estimators: str = typer.Option("wis,pdwis,dr,wdr,fqe,model_based", "--estimators",
                                   help="Estimators to run, comma-separated."),
    resamples: int = typer.Option(2000, "--resamples", help="Patient bootstrap resamples."),
    level: float = typer.Option(0.95, "--level", help="Interval level (one-sided bound at the same level)."),
    method: str = typer.Option("bca", "--method", help="bca or percentile."),
    fqe_interval: str = typer.Option(
        "bootstrap", "--fqe-interval", help="FQE's interval with refitted Q-members: bootstrap (patient "
        "resamples paired with members) or rubin (Rubin's rules over the members: wider; docs/coverage.md)."),
    soften: float = typer.Option(0.01, "--soften", help="Mix this share of the clinician into the policy."),
    clip: float | None = typer.Option(None, "--clip", help="Cap on cumulative importance ratios."),
    rollouts: int = typer.Option(10, "--rollouts", help="Model rollouts per evaluation stay."),
    seed: int = typer.Option(0, "--seed", help="Seed of resamples, HCOPE split, FQE and rollouts."),
    sensitivity: str = typer.Option(
        "", "--sensitivity", help="Comma-separated Lambdas > 1 (e.g. 1.1,1.25): FQE's lower and upper bounds "
        "if the clinicians' real odds of each action differ from the clinician model's by at most "
        "Lambda (unobserved confounding); one extra Q-fit per policy for all of them. Written to ope.json's `sensitivity`."),
    adjust_history: bool = typer.Option(
        False, "--adjust-history/--no-adjust-history",
        help="Fit the clinician model of the weights and the Q-model on the state plus treatment "
        "history (previous and cumulative doses); the policy still acts on the state."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Silence progress output."),
) -> None:
    """Estimate the policy's value with patient-bootstrap intervals against the clinician; write ope.json.

    Example: clinical-mborl evaluate --policy out/combo --cohort out/cohort --behavior out/behavior
    --dynamics out/dynamics --out out/ope
    """
    QUIET["value"] = QUIET["value"] or quiet

    def call() -> dict[str, Any]:
        options = {
            "eval_splits": parse_names(split, "--split"), "estimators": parse_names(estimators, "--estimators"),
            "n_resamples": resamples, "level": level, "method": method, "fqe_interval": fqe_interval,
            "soften_epsilon": soften, "clip": clip, "model_rollouts": rollouts, "seed": seed, "fqe": {"seed": seed},
            "adjust_for_history": adjust_history, "sensitivity_lambdas": parse_lambdas(sensitivity),
        }
        return _run(policy, cohort, behavior, dynamics, out, options)

    print_json(run_library_call(call))


def register(root: typer.Typer) -> None:
    """Add the top-level `evaluate` command to the root app."""
    root.command("evaluate")(evaluate)
