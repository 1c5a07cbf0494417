"""Diagnostic: is FQE biased when it evaluates (nearly) the clinicians themselves?

In the at-steps arm of the coverage study (`--usual-care at-steps`: clinicians decide only at the
cohort's decision times) the reference clinician model run as a Markov policy has the value of
usual care (0.477 vs 0.473), yet FQE's estimate of the clinician model is ~0.12 below the
on-policy mean of the same data sets. This probe refits FQE on replicate data sets of that arm
(same seeds as the study) with three next-action distributions in the target
y = r + gamma * sum_a p(a | s') Q(s', a):

- `expected`: the replicate's clinician model (what the study does);
- `expected_ref`: the reference clinician model (4,000 patients, 64x64, 3 folds): a better pi_b;
- `sarsa`: the action the clinician actually gave at s' (one-hot), i.e. no model of pi_b.

Each is compared with the on-policy mean return of the test patients, whose value it targets.
Writes one JSON line per data set to `benchmarks/results/fqe_onpolicy_probe.jsonl`.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fqe_onpolicy_probe.py --replicates 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from clinical_mborl.behavior import fit_behavior
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.build import build_cohort
from clinical_mborl.ope import FQEConfig, OPEConfig
from clinical_mborl.ope.policy_eval import _fitted_q
from clinical_mborl.simulators.sepsis import simulate_sepsis
from clinical_mborl.studies.config import REPLICATE_STREAM, StudyConfig, derive_seed
from clinical_mborl.studies.reference import load_reference

RESULTS = Path(__file__).resolve().parent / "results" / "fqe_onpolicy_probe.jsonl"


def probe(index: int, config: StudyConfig, ref_dir: Path) -> dict:
    ref = load_reference(ref_dir)
    seed = derive_seed(config.seed, REPLICATE_STREAM, index)
    with tempfile.TemporaryDirectory() as tmp:
        simulate_sepsis(config.patients, seed, Path(tmp) / "ehr", config=config.simulator_settings(4.0))
        build_cohort(ref.spec, Path(tmp) / "ehr", Path(tmp) / "cohort", progress=False, validate=False)
        ts = TransitionSet.load(Path(tmp) / "cohort")
    behavior = fit_behavior(ts, config.behavior.model_copy(update={"seed": seed}))
    raw, norm = ts.arrays(normalised=False), ts.arrays(normalised=True)
    split = ts.frame["split"].to_numpy()
    fit, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    n_actions = ts.n_actions
    nxt = np.minimum(fit + 1, len(raw.actions) - 1)  # rows are ordered by stay and step
    follows = (raw.episode[nxt] == raw.episode[fit]) & (raw.step[nxt] == raw.step[fit] + 1)
    pb_next = np.asarray(behavior.action_probabilities(raw.next_states[fit]))
    observed = np.where(follows[:, None], np.eye(n_actions)[raw.actions[nxt]], pb_next)  # end rows: unused
    first = test[raw.step[test] == 0]
    returns = np.bincount(raw.episode[test], weights=ts.manifest.gamma ** raw.step[test] * raw.rewards[test])
    out: dict = {"replicate": index, "on_policy": float(returns[np.unique(raw.episode[test])].mean())}
    pb_first = np.asarray(behavior.action_probabilities(raw.states[first]))
    targets = {"expected": pb_next, "expected_ref": np.asarray(ref.behavior.action_probabilities(raw.next_states[fit])),
               "sarsa": observed}
    ope = OPEConfig(fqe=FQEConfig(seed=seed))
    for name, next_policy in targets.items():
        # the study's own Q-fit with this next-action target; the bagged Q at the first states
        q = _fitted_q(ts, raw, norm, fit, first, next_policy, ope).mean(axis=0)
        out[name] = float((pb_first * q).sum(1).mean())
    out["p_observed_next_action"] = float(pb_next[follows, raw.actions[nxt][follows]].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--reference", type=Path, default=Path("/tmp/clinical_mborl_studies/reference_atsteps"))
    args = parser.parse_args()
    config = StudyConfig(usual_care="at-steps")
    rows = []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w") as f:
        for index in range(args.replicates):
            rows.append(probe(index, config, args.reference))
            f.write(json.dumps(rows[-1]) + "\n")
            print(json.dumps(rows[-1]), flush=True)
        gaps = {k: [r[k] - r["on_policy"] for r in rows] for k in ("expected", "expected_ref", "sarsa")}
        summary = {"summary": {k: {"mean_gap": float(np.mean(v)), "sd_gap": float(np.std(v, ddof=1))}
                               for k, v in gaps.items()}, "replicates": len(rows)}
        f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
