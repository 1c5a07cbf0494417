"""`clinical-mborl train ...`: fit the clinician (behaviour) policy and the dynamics ensemble."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import typer

from clinical_mborl.cli.common import print_json, progress_enabled, run_library_call

app = typer.Typer(help="Train behaviour, dynamics and policy models.", no_args_is_help=True)
C = TypeVar("C")


@app.callback()
def _train() -> None:
    """Train behaviour, dynamics and policy models (artifacts per CONTRACTS.md §4)."""


def _config(cls: type[C], **fields: Any) -> C:
    """Build a config; an invalid option becomes an InputError (exit 2) naming the field."""
    from pydantic import ValidationError

    from clinical_mborl.core.errors import InputError

    try:
        return cls(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid training options: {problems}") from None


def _hidden(text: str) -> tuple[int, ...]:
    from clinical_mborl.core.errors import InputError

    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--hidden: expected comma-separated widths such as 200,200, got '{text}'") from None
    if any(s < 1 for s in sizes):
        raise InputError(f"--hidden: widths must be positive, got '{text}'")
    return sizes


# --- train behavior -------------------------------------------------------------------------


def _behavior(cohort: Path, out: Path, seed: int, folds: int, hidden: str) -> dict[str, Any]:
    from clinical_mborl.behavior import BehaviorConfig, fit_behavior
    from clinical_mborl.cohort import TransitionSet

    config = _config(BehaviorConfig, seed=seed, n_folds=folds, hidden_sizes=_hidden(hidden))
    policy = fit_behavior(TransitionSet.load(cohort), config)
    policy.save(out)
    keep = ("n_rows", "nll", "ece", "top1_agreement")
    cal = policy.calibration

    def brief(metrics: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in metrics.items() if k in keep}

    return {
        "artifact": str(out),
        "action_kind": policy.action_kind,
        "out_of_fold": brief(cal["out_of_fold"]),
        "held_out": {split: brief(m) for split, m in cal["splits"].items()},
    }


@app.command("behavior")
def behavior(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder (transitions.parquet + manifest.json)."),
    out: Path = typer.Option(..., "--out", help="Artifact folder to write (replaced if it exists)."),
    seed: int = typer.Option(0, "--seed", help="Seed for folds, initialisation and shuffling."),
    folds: int = typer.Option(5, "--folds", help="Patient-level cross-fitting folds."),
    hidden: str = typer.Option("64,64", "--hidden", help="Hidden widths; '' for multinomial logistic."),
) -> None:
    """Estimate the clinician policy (cross-fitted, calibrated); print held-out calibration.

    Example: clinical-mborl train behavior --cohort out/cohort --out out/behavior --seed 0
    """
    print_json(run_library_call(lambda: _behavior(cohort, out, seed, folds, hidden)))


# --- train dynamics -------------------------------------------------------------------------


def _dynamics(cohort: Path, out: Path, checkpoint_dir: Path | None, resume: Path | None,
              **options: Any) -> dict[str, Any]:
    from clinical_mborl.cohort import TransitionSet
    from clinical_mborl.dynamics import DynamicsConfig, fit_dynamics

    options["hidden_sizes"] = _hidden(options["hidden_sizes"])
    config = _config(DynamicsConfig, **options)
    ens = fit_dynamics(TransitionSet.load(cohort), config, checkpoint_dir=checkpoint_dir,
                       resume_from=resume, quiet=not progress_enabled())
    ens.save(out)
    m = ens.metrics
    return {
        "artifact": str(out),
        "elites": ens.elites,
        "epochs_trained": m["epochs_trained"],
        "device": m["device"],
        "holdout_patients": m["n_patients"]["holdout"],
        "holdout_state_nll_mean": m["holdout"]["state_nll_mean"],
        "holdout_rmse": {k: v.get("rmse") for k, v in m["holdout"]["per_feature"].items()},
        "termination": {k: m["holdout"]["termination"][k] for k in ("accuracy", "auroc_death", "auroc_discharge")},
        "horizon_rmse": {str(h["h"]): h["rmse"] for h in m["holdout"]["horizon_rmse"]},
    }


@app.command("dynamics")
def dynamics(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder (transitions.parquet + manifest.json)."),
    out: Path = typer.Option(..., "--out", help="Artifact folder to write (replaced if it exists)."),
    seed: int = typer.Option(0, "--seed", help="Seed for holdout patients, initialisation and batches."),
    max_epochs: int = typer.Option(200, "--max-epochs", help="Upper bound on epochs (early stopping ends sooner)."),
    members: int = typer.Option(7, "--members", help="Ensemble members."),
    elites: int = typer.Option(5, "--elites", help="Members kept for rollouts (best on holdout patients)."),
    hidden: str = typer.Option("200,200,200,200", "--hidden", help="Hidden widths, comma-separated."),
    batch_size: int = typer.Option(256, "--batch-size", help="Rows per gradient step."),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Adam step size."),
    checkpoint_dir: Path | None = typer.Option(
        None, "--checkpoint-dir", help="Keep Lightning checkpoints (best.ckpt, last.ckpt) here."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue from this checkpoint (e.g. last.ckpt)."),
) -> None:
    """Train the probabilistic dynamics ensemble; print holdout quality metrics.

    Example: clinical-mborl train dynamics --cohort out/cohort --out out/dynamics --seed 0
    """
    print_json(run_library_call(lambda: _dynamics(
        cohort, out, checkpoint_dir, resume, seed=seed, max_epochs=max_epochs, n_members=members,
        n_elites=elites, hidden_sizes=hidden, batch_size=batch_size, learning_rate=learning_rate)))


# --- train policy ---------------------------------------------------------------------------


@app.command("policy")
def policy(
    algo: str = typer.Option(..., "--algo", help="morel | combo | mopo | bc | cql"),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder (transitions.parquet + manifest.json)."),
    out: Path = typer.Option(..., "--out", help="Policy artifact folder to write (replaced if it exists)."),
    behavior: Path | None = typer.Option(
        None, "--behavior", help="Behaviour-policy artifact (`train behavior`); needed by the clinician constraint."),
    dynamics: Path | None = typer.Option(
        None, "--dynamics", help="Dynamics ensemble artifact (`train dynamics`); needed by morel, combo, mopo."),
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation, minibatches and model rollouts."),
    updates: int | None = typer.Option(None, "--updates", help="Gradient updates (default: the algorithm's)."),
    select: bool = typer.Option(False, "--select/--no-select",
                                help="Search the algorithm's grid; keep the best held-out model-based value."),
    settings: list[str] = typer.Option([], "--set", help="Config field, e.g. --set beta=5 "
                                       "--set constraint.kl_weight=0.1 (repeatable)."),
) -> None:
    """Train a dosing policy offline, constrained to the clinician; print a summary.

    Example: clinical-mborl train policy --algo combo --cohort out/cohort --behavior out/behavior \\
        --dynamics out/dynamics --out out/combo --seed 0
    """
    def call() -> dict[str, Any]:
        from clinical_mborl.policies.command import parse_settings, train_policy_artifact

        overrides = {**parse_settings(settings), "seed": seed}
        if updates is not None:
            overrides["n_updates"] = updates
        return train_policy_artifact(algo, cohort, out, behavior, dynamics, overrides, select,
                                     quiet=not progress_enabled())

    print_json(run_library_call(call))
