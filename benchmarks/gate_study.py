"""Benchmark: the gate study on the sepsis simulator (issue 6, first "Must show").

Runs `clinical_mborl.studies.run_study("gate")` with the default StudyConfig (GateConfig defaults
without the explanation check, subgroups sex / age band / severity) over R >= 100 simulated data
sets of N patients. With the same `--work`, N and seed as `benchmarks/coverage_study.py` it reads
the coverage study's replicates (each replicate already holds every candidate's gate decision),
so only missing replicates are computed.

Results: `benchmarks/results/gate_N{N}.md` and `.json` (`gate_N{N}_atsteps.*` with `--usual-care at-steps`).

Run: OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/gate_study.py --patients 1000 \\
         --replicates 100 > /tmp/gate_study.log 2>&1 &
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from coverage_study import ARM_SUFFIX, REFERENCE_DIR, study_config  # the coverage study's settings

from clinical_mborl.studies import run_study

RESULTS = Path(__file__).resolve().parent / "results"


def log(line: str) -> None:
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {line}\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/clinical_mborl_studies"))
    parser.add_argument("--fqe-epochs", type=int, default=None, help="As in coverage_study.py for this N.")
    parser.add_argument("--usual-care", choices=["hourly", "at-steps", "markov"], default="hourly",
                        help="As in coverage_study.py; results go to gate_N{N}_atsteps.* / gate_N{N}_markov.*")
    args = parser.parse_args()
    if args.replicates < 100:
        log("note: the issue asks for R >= 100; this run is a smaller one")
    arm = ARM_SUFFIX[args.usual_care]
    out = args.work / f"coverage_N{args.patients}{arm}"  # shared with the coverage study
    config = study_config(args.patients, args.replicates, args.seed, args.fqe_epochs, usual_care=args.usual_care)
    result = run_study("gate", config, out, ref_dir=args.work / REFERENCE_DIR[args.usual_care], jobs=args.jobs, log=log)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"gate_N{args.patients}{arm}"
    for ext in ("md", "json"):
        shutil.copyfile(out / f"gate.{ext}", RESULTS / f"{name}.{ext}")
    v = result.verdict
    log(f"wrote {RESULTS / f'{name}.md'}; worse refused >= 95%: "
        f"{v.all_worse_refused if v else None}; best learned {v.best_learned if v else None} passes "
        f"{v.best_learned_pass_share if v else None}")


if __name__ == "__main__":
    main()
