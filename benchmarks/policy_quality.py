"""Policy quality on the simulator: train BC, CQL, MOPO, MOReL and COMBO on a simulated cohort,
several seeds each, and measure each policy's TRUE value and hospital mortality in closed loop,
beside clinician, random, no-treatment and oracle. Also wall time per algorithm and seed, and
gradient steps/s.

The simulator's truth is used only here, to evaluate; learners never see it.

    .venv/bin/python benchmarks/policy_quality.py --patients 5000 --seeds 0 1 2 --episodes 4000

Writes benchmarks/results/policy_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinical_mborl.behavior import BehaviorConfig, fit_behavior  # noqa: E402
from clinical_mborl.cohort import TransitionSet, load_cohort_spec  # noqa: E402
from clinical_mborl.cohort.build import build_cohort  # noqa: E402
from clinical_mborl.dynamics import DynamicsConfig, fit_dynamics  # noqa: E402
from clinical_mborl.policies import NoTreatmentPolicy, RandomPolicy, train_policy  # noqa: E402
from clinical_mborl.policies.train import MODEL_BASED, default_config  # noqa: E402
from clinical_mborl.simulators.sepsis import simulate_sepsis  # noqa: E402
from clinical_mborl.simulators.sepsis.ground_truth import evaluate_in_closed_loop  # noqa: E402
from clinical_mborl.simulators.sepsis.policies import Oracle, UsualCare  # noqa: E402

ALGOS = ("bc", "cql", "mopo", "morel", "combo")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=5000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=4000, help="closed-loop episodes per policy")
    ap.add_argument("--algos", nargs="+", default=list(ALGOS))
    ap.add_argument("--spec", default=str(ROOT / "cohorts" / "sepsis_fluids_vasopressors.yaml"))
    ap.add_argument("--updates", type=int, default=None, help="override n_updates of every learner")
    ap.add_argument("--dyn-hidden", type=int, nargs="+", default=[200, 200, 200, 200])
    ap.add_argument("--dyn-epochs", type=int, default=60)
    ap.add_argument("--exact-history", action="store_true",
                    help="DynamicsConfig.exact_treatment_history (specs with treatment features)")
    ap.add_argument("--work", default="/tmp/cm_policy_quality")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "policy_quality"))
    return ap.parse_args()


def truth(policy: Any, ts: TransitionSet, episodes: int) -> dict[str, float]:
    # Same episodes seed for every policy: common random numbers make differences paired.
    r = evaluate_in_closed_loop(policy, ts.manifest.spec, ts.manifest, episodes, seed=12345)
    return {"value": r.value, "value_ci": [r.value_ci_low, r.value_ci_high], "mortality": r.mortality,
            "mortality_ci": [r.mortality_ci_low, r.mortality_ci_high]}


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    work = Path(args.work)
    spec = load_cohort_spec(args.spec)
    t0 = time.perf_counter()
    simulate_sepsis(args.patients, 2024, work / "ehr")
    build_cohort(spec, work / "ehr", work / "cohort", progress=False)
    ts = TransitionSet.load(work / "cohort")
    print(f"cohort: {len(ts)} transitions, {time.perf_counter() - t0:.1f}s", flush=True)

    rows: list[dict[str, Any]] = []
    for name, pol in (("clinician", UsualCare()), ("oracle", Oracle()),
                      ("random", RandomPolicy(ts.feature_names, ts.manifest.action_space)),
                      ("no-treatment", NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space))):
        rows.append({"policy": name, "seed": None, **truth(pol, ts, args.episodes)})
        print(rows[-1], flush=True)

    for seed in args.seeds:
        t = time.perf_counter()
        behavior = fit_behavior(ts, BehaviorConfig(seed=seed))
        t_beh = time.perf_counter() - t
        t = time.perf_counter()
        dyn = fit_dynamics(ts, DynamicsConfig(seed=seed, hidden_sizes=tuple(args.dyn_hidden),
                                              max_epochs=args.dyn_epochs,
                                              exact_treatment_history=args.exact_history), quiet=True)
        t_dyn = time.perf_counter() - t
        print(f"seed {seed}: behaviour {t_beh:.0f}s, dynamics {t_dyn:.0f}s", flush=True)
        for algo in args.algos:
            overrides: dict[str, Any] = {"seed": seed, "quiet": True}
            if args.updates:
                overrides["n_updates"] = args.updates
            cfg = default_config(algo, **overrides)
            t = time.perf_counter()
            policy = train_policy(algo, ts, behavior, dyn if algo in MODEL_BASED else None, cfg)
            wall = time.perf_counter() - t
            row = {"policy": algo, "seed": seed, "train_s": wall, "updates": cfg.n_updates,
                   "steps_per_s": cfg.n_updates / wall, "dynamics_s": t_dyn, "behavior_s": t_beh,
                   **truth(policy, ts, args.episodes)}
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    write(rows, args)


def _sd(x: list[float]) -> float:
    return statistics.stdev(x) if len(x) > 1 else 0.0


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clin = next(r for r in rows if r["policy"] == "clinician")
    lines = [f"# Policy quality on the sepsis simulator ({args.patients} patients, seeds {args.seeds}, "
             f"{args.episodes} closed-loop episodes per policy)", "",
             "| policy | seeds | true value (mean ± sd) | mortality % (mean ± sd) | Δ mortality vs clinician (pp) "
             "| train s / seed | grad steps/s |", "|---|---|---|---|---|---|---|"]
    for name in ["clinician", "oracle", "random", "no-treatment", *args.algos]:
        rs = [r for r in rows if r["policy"] == name]
        if not rs:
            continue
        vals, mort = [r["value"] for r in rs], [100 * r["mortality"] for r in rs]
        train = f"{statistics.mean(r['train_s'] for r in rs):.0f}" if "train_s" in rs[0] else ""
        sps = f"{statistics.mean(r['steps_per_s'] for r in rs):.0f}" if "steps_per_s" in rs[0] else ""
        lines.append(f"| {name} | {len(rs)} | {statistics.mean(vals):.3f} ± {_sd(vals):.3f} | "
                     f"{statistics.mean(mort):.1f} ± {_sd(mort):.1f} | "
                     f"{statistics.mean(mort) - 100 * clin['mortality']:+.1f} | {train} | {sps} |")
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
