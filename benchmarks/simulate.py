"""Benchmark: the vectorised sepsis simulator against a per-patient loop of the same model.

Times 10,000 stays x 72 h of usual care (physiology, clinician, charting) with all stays in one
batch, then the same model one stay at a time (`SepsisSimulator(1, ...)` per stay) on a sample
of stays, extrapolated to 10,000, and prints the ratio. Writing the canonical tables is timed
separately. Target (issue 3): <= 30 s for 10,000 x 72 h on 2 cores.

Options print the figures the simulator's documentation reports:
`--plausibility` (the table of docs/simulator.md, usual care until discharge or death) and
`--ground-truth N` (closed-loop mortality and value of clinician, oracle, random, no-treatment
on N episodes, with a reference cohort built from simulated usual care).

    .venv/bin/python benchmarks/simulate.py
    .venv/bin/python benchmarks/simulate.py --plausibility --ground-truth 4000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from clinical_mborl.simulators.sepsis import SepsisSimulator, build_tables

HOURS = 72


def batch(n: int, seed: int) -> tuple[float, float, SepsisSimulator]:
    """(simulation seconds, table-building seconds, simulator) for `n` stays x 72 h in one batch."""
    start = time.perf_counter()
    sim = SepsisSimulator(n, seed)
    sim.run_until(HOURS)
    mid = time.perf_counter()
    build_tables(sim)
    return mid - start, time.perf_counter() - mid, sim


def per_patient(n_sample: int, seed: int) -> float:
    """Seconds per stay when the same model runs one stay at a time (72 h each)."""
    start = time.perf_counter()
    for i in range(n_sample):
        SepsisSimulator(1, seed + i).run_until(HOURS)
    return (time.perf_counter() - start) / n_sample


def ground_truth(n: int, seed: int) -> None:
    from clinical_mborl.cohort import load_cohort_spec
    from clinical_mborl.policies.baselines import NoTreatmentPolicy, RandomPolicy
    from clinical_mborl.simulators.sepsis.ground_truth import evaluate_in_closed_loop
    from clinical_mborl.simulators.sepsis.policies import Oracle, UsualCare
    from clinical_mborl.simulators.sepsis.reference import reference_cohort

    spec = load_cohort_spec("cohorts/sepsis_fluids_vasopressors.yaml")
    ts = reference_cohort(spec, seed=seed)
    m = ts.manifest
    print(f"\nclosed loop, {n} episodes, seed {seed}, spec {spec.name} (reference cohort of 2000 simulated stays)")
    print("| policy | hospital mortality (95% CI) | value (95% CI) | seconds |\n|---|---|---|---|")
    policies: list[Any] = [UsualCare(), Oracle(), RandomPolicy(ts.feature_names, m.action_space),
                NoTreatmentPolicy(ts.feature_names, m.action_space)]
    for policy in policies:
        start = time.perf_counter()
        r = evaluate_in_closed_loop(policy, spec, m, n, seed)
        print(f"| {r.policy} | {100 * r.mortality:.1f}% ({100 * r.mortality_ci_low:.1f}-{100 * r.mortality_ci_high:.1f}) "
              f"| {r.value:.3f} ({r.value_ci_low:.3f} to {r.value_ci_high:.3f}) | {time.perf_counter() - start:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description="Sepsis simulator speed (and the documented figures).")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--loop-sample", type=int, default=200, help="Stays timed in the per-patient loop.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plausibility", action="store_true", help="Also print the plausibility table.")
    parser.add_argument("--ground-truth", type=int, default=0, metavar="N", help="Also run closed loops of N episodes.")
    args = parser.parse_args()

    sim_s, table_s, sim = batch(args.patients, args.seed)
    loop_per_stay = per_patient(args.loop_sample, args.seed)
    loop_s = loop_per_stay * args.patients
    rows = sim.charter.rows()[0].size
    print(f"vectorised: {args.patients} stays x {HOURS} h: {sim_s:.1f} s simulation + {table_s:.1f} s tables "
          f"= {sim_s + table_s:.1f} s ({rows} measurement rows); target <= 30 s: "
          f"{'met' if sim_s + table_s <= 30 else 'MISSED'}")
    print(f"per-patient loop (same model, {args.loop_sample} stays timed): {1000 * loop_per_stay:.1f} ms/stay "
          f"-> {loop_s:.0f} s for {args.patients} stays; vectorised is {loop_s / sim_s:.0f}x faster")
    print(f"usual care at {HOURS} h: {100 * np.mean(sim.died):.1f}% died so far, "
          f"{100 * np.mean(sim.active):.1f}% still in ICU")
    if args.plausibility:
        from clinical_mborl.simulators.sepsis.plausibility import plausibility_rows, to_markdown
        from clinical_mborl.simulators.sepsis.simulate import run_simulation

        start = time.perf_counter()
        full = run_simulation(args.patients, args.seed)
        tables = build_tables(full)
        print(f"\nplausibility ({args.patients} full stays, {time.perf_counter() - start:.1f} s)\n")
        print(to_markdown(plausibility_rows(tables), args.patients, args.seed))
    if args.ground_truth:
        ground_truth(args.ground_truth, args.seed)


if __name__ == "__main__":
    main()
