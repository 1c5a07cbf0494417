"""Diagnostic: the closed-loop value of the study's clinician MODEL run as a Markov policy.

FQE, DR and WDR evaluate the clinician as the fitted model pi_b(a | s); the study's truth for the
clinician is usual care itself (the simulated clinician, hourly, history-dependent). This runs the
reference clinician model in the same closed loop, with the same chunk seeds as the truths, so the
two values can be compared (docs/coverage.md, "Tried after the second study").

Needs a study reference folder (made by `benchmarks/coverage_study.py`).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/clinician_model_truth.py
     OMP_NUM_THREADS=1 .venv/bin/python benchmarks/clinician_model_truth.py --usual-care at-steps \
         --reference /tmp/clinical_mborl_studies/reference_atsteps
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clinical_mborl.simulators.sepsis.ground_truth import Z95, evaluate_in_closed_loop
from clinical_mborl.studies.config import TRUTH_STREAM, StudyConfig, derive_seed, simulator_config
from clinical_mborl.studies.reference import load_reference
from clinical_mborl.studies.truth import chunk_sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=Path("/tmp/clinical_mborl_studies/reference"))
    parser.add_argument("--seed", type=int, default=0, help="The study's master seed (truth chunk seeds).")
    parser.add_argument("--usual-care", choices=["hourly", "at-steps"], default="hourly",
                        help="The study arm whose reference this is (use reference_atsteps for at-steps).")
    args = parser.parse_args()
    ref = load_reference(args.reference)
    chunks = []
    for index, n in enumerate(chunk_sizes(StudyConfig(seed=args.seed))):
        r = evaluate_in_closed_loop(ref.behavior, ref.spec, ref.manifest, n_episodes=n,
                                    seed=derive_seed(args.seed, TRUTH_STREAM, index),
                                    config=simulator_config(args.usual_care, ref.spec.time.step_hours))
        se = (r.value_ci_high - r.value_ci_low) / (2 * Z95)
        chunks.append({"value": r.value, "se": se, "included": r.included, "mortality": r.mortality})
        print(json.dumps({"chunk": index, **chunks[-1]}), flush=True)
    n_inc = sum(c["included"] for c in chunks)
    value = sum(c["value"] * c["included"] for c in chunks) / n_inc
    se = sum((c["included"] * c["se"]) ** 2 for c in chunks) ** 0.5 / n_inc
    mortality = sum(c["mortality"] * c["included"] for c in chunks) / n_inc
    print(json.dumps({"policy": "reference clinician model (Markov)", "usual_care": args.usual_care,
                      "value": value, "ci95": Z95 * se,
                      "mortality": mortality, "included": n_inc}))


if __name__ == "__main__":
    main()
