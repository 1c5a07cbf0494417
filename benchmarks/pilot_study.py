"""Paired pilot: re-run the first R data sets of a coverage-study arm with one change.

The data sets are the arm's own (same seeds), so `benchmarks/paired_compare.py NEW OLD` compares
each estimate with the one the full study made on the same data. Changes: `--fqe '{"field": value}'`
(FQEConfig fields), `--dynamics '{...}'` (the ensemble's DynamicsConfig fields), `--spec PATH` (another cohort spec: a new reference, so name it with `--ref`),
`--lambdas L ...` (FQE's marginal-sensitivity bounds), `--cross-fit-all K` (every patient of each data set
evaluated, the clinician model and the Q-model cross-fitted over K patient folds of all of them, instead of a
half fitting and the other half evaluated; the dynamics ensemble is fitted on all patients). `--indices I ...` runs
only those data sets (no summary), e.g. the ones where a full study's bound failed. Results: `<work>/pilot_<name>_<arm>/`.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pilot_study.py hourly msmcal 20 --lambdas 1.1 1.25
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coverage_study import REFERENCE_DIR, study_config  # noqa: E402

from clinical_mborl.studies import StudyConfig, run_study  # noqa: E402
from clinical_mborl.studies.study import run_selected_replicates  # noqa: E402


def cross_fit_all(config: StudyConfig, folds: int) -> StudyConfig:
    """`config` with every patient evaluated and the nuisance models cross-fitted over `folds` folds."""
    both = ("train", "test")
    fqe = config.ope.fqe.model_copy(update={"n_folds": folds})
    ope = config.ope.model_copy(update={"eval_splits": both, "q_fit_splits": both, "fqe": fqe})
    behavior = config.behavior.model_copy(update={"fit_splits": both, "eval_splits": both, "n_folds": folds})
    update: dict = {"ope": ope, "behavior": behavior}
    if config.dynamics is not None:
        update["dynamics"] = config.dynamics.model_copy(update={"fit_splits": both})
    return config.model_copy(update=update)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arm", choices=sorted(REFERENCE_DIR))
    p.add_argument("name", help="Pilot name (folder pilot_<name>_<arm>).")
    p.add_argument("reps", type=int, help="Replicates (data sets 0..R-1); with --indices, the size of the "
                   "study the indices come from (it does not enter the folder's fingerprint).")
    p.add_argument("--fqe", default="{}", help="JSON object of FQEConfig fields to change.")
    p.add_argument("--dynamics", default="{}", help="JSON object of the study ensemble's DynamicsConfig fields to change.")
    p.add_argument("--spec", help="Cohort spec YAML replacing the study's.")
    p.add_argument("--ref", help="Reference folder name under --work (default: the arm's).")
    p.add_argument("--patients", type=int, default=1000)
    p.add_argument("--lambdas", type=float, nargs="+", default=())
    p.add_argument("--cross-fit-all", type=int, metavar="K", help="Evaluate every patient; nuisance models "
                   "cross-fitted over K patient folds (see the module docstring).")
    p.add_argument("--indices", type=int, nargs="+", help="Run only these data sets (no summary; compare with "
                   "benchmarks/paired_compare.py after copying the old study's coverage.json for the truths).")
    p.add_argument("--work", type=Path, default=Path("/tmp/clinical_mborl_studies"))
    p.add_argument("--jobs", type=int, default=2, help="Worker processes (one per core).")
    p.add_argument("--truth-episodes", type=int, help="Closed-loop episodes per candidate's truth (default: "
                   "StudyConfig's); the replicates do not depend on it, so a finished study can be re-summarised.")
    a = p.parse_args()
    config = study_config(a.patients, a.reps, 0, None, usual_care=a.arm, sensitivity=tuple(a.lambdas))
    if a.truth_episodes:
        config = config.model_copy(update={"truth_episodes": a.truth_episodes})
    update = json.loads(a.fqe)
    if update:
        fqe = type(config.ope.fqe).model_validate({**config.ope.fqe.model_dump(), **update})  # checked, not copied
        config = config.model_copy(update={"ope": config.ope.model_copy(update={"fqe": fqe})})
    dynamics = json.loads(a.dynamics)
    if dynamics:
        config = config.model_copy(update={"dynamics": config.dynamics.model_copy(update=dynamics)})
    if a.cross_fit_all:
        config = cross_fit_all(config, a.cross_fit_all)
    if a.spec:
        config = config.model_copy(update={"spec_path": a.spec})
    started = time.time()
    log = lambda s: print(time.strftime("%H:%M:%S"), s, flush=True)  # noqa: E731
    if a.indices:
        ran = run_selected_replicates(config, a.work / f"pilot_{a.name}_{a.arm}",
                                      a.work / (a.ref or REFERENCE_DIR[a.arm]), a.indices, a.jobs, log)
        print(f"done: {len(ran)} replicates in {time.time() - started:.0f} s")
        return
    result = run_study("coverage", config, a.work / f"pilot_{a.name}_{a.arm}",
                       ref_dir=a.work / (a.ref or REFERENCE_DIR[a.arm]), jobs=a.jobs, log=log)
    print(f"done: {result.n_replicates} replicates in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
