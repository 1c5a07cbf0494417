"""`clinical-mborl simulate sepsis ...` and `clinical-mborl ground-truth ...`.

`simulate sepsis` writes canonical EHR tables from the ground-truth sepsis simulator;
`ground-truth` runs a policy in closed loop on the same simulator and prints its true value and
hospital mortality with Monte Carlo 95% intervals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clinical_mborl.cli.common import QUIET, print_json, progress_enabled, run_library_call

app = typer.Typer(help="Simulate EHR tables with a known ground truth.", no_args_is_help=True)


@app.callback()
def _simulate() -> None:
    """Simulate canonical EHR tables (CONTRACTS.md §1) from a ground-truth simulator."""


@app.command("sepsis")
def sepsis(
    patients: int = typer.Option(..., "--patients", help="Number of ICU stays to simulate (>= 1)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Silence the progress bar."),
) -> None:
    """Simulate ICU stays with sepsis under usual care; write stays/measurements/treatments + simulation.json.

    Example: clinical-mborl simulate sepsis --patients 2000 --seed 0 --out data/ehr
    """
    from clinical_mborl.simulators.sepsis import simulate_sepsis

    QUIET["value"] = QUIET["value"] or quiet
    summary = run_library_call(lambda: simulate_sepsis(patients, seed, out, progress=progress_enabled()))
    print_json(summary.model_dump(mode="json"))


def ground_truth(
    sim: str = typer.Option("sepsis", "--sim", help="Simulator (only 'sepsis')."),
    policy: str = typer.Option(..., "--policy",
                               help="clinician | random | no-treatment | oracle | a policy artifact folder."),
    episodes: int = typer.Option(1000, "--episodes", help="Closed-loop episodes (ICU stays)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
    cohort: Path | None = typer.Option(
        None, "--cohort", help="Cohort folder (manifest.json) whose spec, features, normalisation and dose "
        "levels the policy uses; default: build one from a simulated reference cohort."),
    spec: Path = typer.Option(Path("cohorts/sepsis_fluids_vasopressors.yaml"), "--spec",
                              help="Cohort spec for the reference cohort when --cohort is not given."),
    behavior: Path | None = typer.Option(
        None, "--behavior", help="Behaviour-policy artifact: needed by policies trained with a clinician "
        "support mask or KL constraint, and for protocol YAMLs that defer to the clinician."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Silence the progress bar."),
) -> None:
    """Run a policy in closed loop on the simulator; print its true value and mortality (95% MC intervals).

    Example: clinical-mborl ground-truth --sim sepsis --policy oracle --episodes 2000 --seed 0 --cohort out/cohort
    """
    QUIET["value"] = QUIET["value"] or quiet
    result = run_library_call(
        lambda: _run_ground_truth(sim, policy, episodes, seed, cohort, spec, behavior, progress=progress_enabled())
    )
    print_json(result.model_dump(mode="json"))


def _run_ground_truth(sim: str, policy: str, episodes: int, seed: int, cohort: Path | None, spec: Path,
                      behavior: Path | None, progress: bool) -> Any:
    """Resolve the cohort and the policy, then call `evaluate_in_closed_loop`."""
    from tqdm import tqdm

    from clinical_mborl.cohort import TransitionSet, load_cohort_spec
    from clinical_mborl.core.errors import InputError
    from clinical_mborl.simulators.sepsis.ground_truth import evaluate_in_closed_loop
    from clinical_mborl.simulators.sepsis.policies import Oracle, UsualCare
    from clinical_mborl.simulators.sepsis.reference import reference_cohort

    if sim != "sepsis":
        raise InputError(f"ground-truth: unknown simulator '{sim}'; expected 'sepsis'.")
    transitions = TransitionSet.load(cohort) if cohort is not None else reference_cohort(load_cohort_spec(spec), seed=seed)
    resolved: Any
    if policy == "clinician":
        resolved = UsualCare()
    elif policy == "oracle":
        resolved = Oracle()
    else:
        from clinical_mborl.behavior import ClinicianPolicy
        from clinical_mborl.policies.loading import load_policy

        clinician = ClinicianPolicy.load(behavior) if behavior is not None else None
        resolved = load_policy(policy, transitions, clinician)
    manifest = transitions.manifest
    with tqdm(total=manifest.spec.time.n_steps, desc="closed loop", unit="step", disable=not progress,
              leave=False) as bar:
        def tick(k: int, total: int) -> None:
            bar.n = k
            bar.refresh()

        return evaluate_in_closed_loop(resolved, manifest.spec, manifest, episodes, seed, progress=tick)


def register(root: typer.Typer) -> None:
    """Add `simulate` (sub-app) and `ground-truth` (top-level command) to the root app."""
    root.add_typer(app, name="simulate")
    root.command("ground-truth")(ground_truth)
