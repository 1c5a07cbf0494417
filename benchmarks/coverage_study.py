"""Benchmark: the OPE coverage study on the sepsis simulator (issue 5, "Must show").

For each N (default 1,000 and 5,000 patients) it runs `clinical_mborl.studies.run_study("coverage")`
with the library's default StudyConfig (7 candidates, every estimator, B = 2,000 BCa, fast nuisance
models: see `clinical_mborl/studies/config.py`), R replicates, in steps of `--step` so that a
wall-time budget per N can stop it early: the study resumes from its saved replicates, and the
table is written for the replicates done, with the projected time for R = 200 in it.

Results: `benchmarks/results/coverage_N{N}.md` and `.json` (copied from the study folder);
with `--adjust-history`, `coverage_N{N}_history.*` (OPE nuisance models see the treatment history);
with `--sensitivity 1.5 2 ...`, `coverage_N{N}_msm*` (FQE's marginal-sensitivity intervals at those
Lambdas, `fqe_msm{L}`, and at the Lambda calibrated on the clinicians, `fqe_msm_cal`).
With `--usual-care at-steps` (clinicians decide only at the cohort's decision times: no within-step
confounding), `coverage_N{N}_atsteps.*`; with `--usual-care markov` (the reference clinician model
doses every data set: no confounding outside the cohort state), `coverage_N{N}_markov.*`. The reference (policy-training data, learned candidates,
truth cache) is shared by every N and by `benchmarks/gate_study.py` under `--work`
(`reference/`, and `reference_atsteps/` for the at-steps arm).

Run: OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/coverage_study.py --patients 1000 5000 \\
         --replicates 200 --budget-minutes 60 40 > /tmp/coverage_study.log 2>&1 &
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from clinical_mborl.studies import StudyConfig, run_study

RESULTS = Path(__file__).resolve().parent / "results"
#: result-file suffix and reference folder (under --work) of each `StudyConfig.usual_care` arm; the
#: markov arm shares the hourly reference (same policy-training data and clinician model)
ARM_SUFFIX = {"hourly": "", "at-steps": "_atsteps", "markov": "_markov"}
REFERENCE_DIR = {"hourly": "reference", "at-steps": "reference_atsteps", "markov": "reference"}


def log(line: str) -> None:
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {line}\n")
    sys.stdout.flush()


def study_config(n: int, replicates: int, seed: int, fqe_epochs: int | None,
                 adjust_history: bool = False, usual_care: str = "hourly",
                 sensitivity: tuple[float, ...] = ()) -> StudyConfig:
    """The study's defaults; `fqe_epochs` replaces the Q-model's epochs per FQE iteration,
    `adjust_history` turns on the OPE's treatment-history adjustment (`clinical_mborl.ope.history`),
    `usual_care` picks the simulated clinicians (`StudyConfig.usual_care`), `sensitivity` the
    Lambdas of FQE's marginal-sensitivity bounds (`clinical_mborl.ope.sensitivity`)."""
    config = StudyConfig(replicates=replicates, patients=n, seed=seed, usual_care=usual_care)
    if adjust_history:
        config = config.model_copy(update={"ope": config.ope.model_copy(update={"adjust_for_history": True})})
    if sensitivity:
        config = config.model_copy(update={"ope": config.ope.model_copy(
            update={"sensitivity_lambdas": tuple(sensitivity)})})
    if fqe_epochs is None:
        return config
    fqe = config.ope.fqe.model_copy(update={"epochs_per_iteration": fqe_epochs})
    return config.model_copy(update={"ope": config.ope.model_copy(update={"fqe": fqe})})


def run_one(n: int, replicates: int, budget_s: float, step: int, jobs: int, work: Path, seed: int,
            fqe_epochs: int | None = None, adjust_history: bool = False, usual_care: str = "hourly",
            sensitivity: tuple[float, ...] = ()) -> None:
    """Run (or resume) the study at N = n until R = replicates or the budget is spent."""
    started = time.perf_counter()
    arm = ARM_SUFFIX[usual_care]
    name = f"coverage_N{n}" + ("_history" if adjust_history else "") + ("_msm" if sensitivity else "") + arm
    out = work / name
    done = 0
    while done < replicates:
        target = min(replicates, done + step)
        config = study_config(n, target, seed, fqe_epochs, adjust_history, usual_care, sensitivity)
        result = run_study("coverage", config, out, ref_dir=work / REFERENCE_DIR[usual_care], jobs=jobs, log=log)
        done = result.n_replicates
        spent = time.perf_counter() - started
        per = result.timing.mean_replicate_seconds or 0.0
        log(f"N={n}: {done} replicates in {spent:.0f} s (mean {per:.1f} s/replicate/worker)")
        if spent + per * step / jobs > budget_s:
            log(f"N={n}: budget of {budget_s:.0f} s reached at R={done}; projected wall for R=200: "
                f"{(result.timing.projected_wall_seconds_r200 or 0) / 60:.1f} min")
            break
    RESULTS.mkdir(parents=True, exist_ok=True)
    for ext in ("md", "json"):
        shutil.copyfile(out / f"coverage.{ext}", RESULTS / f"{name}.{ext}")
    log(f"N={n}: wrote {RESULTS / f'{name}.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--budget-minutes", type=float, nargs="+", default=[600.0],
                        help="Wall-time budget per N (one value for all, or one per N).")
    parser.add_argument("--step", type=int, default=10, help="Replicates between budget checks.")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/clinical_mborl_studies"))
    parser.add_argument("--fqe-epochs", type=int, nargs="+", default=None,
                        help="Epochs per FQE iteration per N (default: the study's 4). With one epoch at "
                             "N = 5,000 an iteration takes 44 gradient steps, as 4 epochs do at N = 1,000 (36).")
    parser.add_argument("--adjust-history", action="store_true",
                        help="OPE with the treatment-history adjustment; results go to coverage_N{N}_history.*")
    parser.add_argument("--usual-care", choices=["hourly", "at-steps", "markov"], default="hourly",
                        help="Who doses in each data set (StudyConfig.usual_care); at-steps: results go to "
                             "coverage_N{N}_atsteps.* with their own reference folder (reference_atsteps); "
                             "markov (the reference clinician model acts): coverage_N{N}_markov.*")
    parser.add_argument("--sensitivity", type=float, nargs="+", default=(),
                        help="Lambdas of FQE's marginal-sensitivity bounds (two extra Q-fits each per "
                             "candidate); results go to coverage_N{N}_msm*")
    args = parser.parse_args()
    budgets = args.budget_minutes * len(args.patients) if len(args.budget_minutes) == 1 else args.budget_minutes
    epochs = args.fqe_epochs or [None] * len(args.patients)
    for n, minutes, fqe_epochs in zip(args.patients, budgets, epochs, strict=True):
        run_one(n, args.replicates, 60.0 * minutes, args.step, args.jobs, args.work, args.seed, fqe_epochs,
                args.adjust_history, args.usual_care, tuple(args.sensitivity))


if __name__ == "__main__":
    main()
