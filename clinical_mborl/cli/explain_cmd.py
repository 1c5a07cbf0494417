"""`clinical-mborl explain`: Captum attributions of a trained policy, with completeness and sanity checks.

Example:
    clinical-mborl explain --policy out/morel --cohort out/cohort --behavior out/behavior --out out/explain
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clinical_mborl.cli.common import print_json, run_library_call


def _run(policy: str, cohort: Path, behavior: Path | None, out: Path, split: str, options: dict[str, Any],
         dimension: int) -> dict[str, Any]:
    from clinical_mborl.behavior import ClinicianPolicy
    from clinical_mborl.cohort import TransitionSet
    from clinical_mborl.core.errors import InputError
    from clinical_mborl.explain.adapters import explain_learned_policy
    from clinical_mborl.explain.explanation import ExplainConfig, save_explanation
    from clinical_mborl.policies import load_policy
    from clinical_mborl.policies.learned import LearnedPolicy

    transitions = TransitionSet.load(cohort)
    clinician = ClinicianPolicy.load(behavior) if behavior is not None else None
    target = load_policy(policy, transitions, clinician)
    if not isinstance(target, LearnedPolicy):
        raise InputError(f"explain: '{policy}' has no network to attribute (protocols and named baselines "
                         "state their rule); pass a trained policy artifact.")
    try:
        config = ExplainConfig(**options)
    except ValueError as exc:
        raise InputError(f"invalid explain options: {exc}") from None
    e = explain_learned_policy(target, transitions, split, config, dimension)
    save_explanation(e, out)
    s = e.summary
    return {"out": str(out), "target": s.target, "rows": s.n_rows,
            "completeness": {"passed": s.completeness.passed, "max_relative_delta": s.completeness.max_relative_delta},
            "sanity": {"passed": s.sanity.passed, "spearman": s.sanity.full_randomisation_spearman},
            "top_features": [f.feature for f in s.global_importance[:5]]}


def explain(
    policy: str = typer.Option(..., "--policy", help="Trained policy artifact folder."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort folder (transitions.parquet + manifest.json)."),
    behavior: Path | None = typer.Option(None, "--behavior", help="Behaviour-policy artifact; needed by "
                                         "policies trained with the clinician support mask."),
    out: Path = typer.Option(..., "--out", help="Folder for attributions.parquet and summary.json."),
    split: str = typer.Option("test", "--split", help="Split whose decision steps are explained."),
    max_rows: int = typer.Option(512, "--max-rows", help="At most this many steps (uniform subsample)."),
    shapley_samples: int = typer.Option(200, "--shapley-samples", help="Permutations of ShapleyValueSampling."),
    dimension: int = typer.Option(0, "--dimension", help="Continuous policies: the dose dimension explained."),
    seed: int = typer.Option(0, "--seed", help="Seed of subsampling and sampling-based attributions."),
) -> None:
    """Attribute the policy's recommended-vs-clinician contrast to the state features (clinical units)."""
    options = {"max_rows": max_rows, "shapley_samples": shapley_samples, "seed": seed}
    print_json(run_library_call(lambda: _run(policy, cohort, behavior, out, split, options, dimension)))


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
