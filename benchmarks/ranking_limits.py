"""What keeps an estimator's ranking under Spearman 0.8: its bias, its noise, or the candidates?

Issue 5 asks the best ranking estimator for a mean (per data set) Spearman correlation >= 0.8
between its values and the truths across the candidates. From a coverage study's saved
replicates this script splits the shortfall of one estimator (FQE by default) into parts:

- **measured**: the study's mean Spearman;
- **bias removed**: each candidate's mean error across data sets subtracted from its estimates,
  so only the data-set-to-data-set noise (with its correlation across candidates) is left;
- **noise removed**: truth + mean bias (one ranking, the same in every data set);
- **independent noise**: unbiased normal errors with each candidate's measured sd but no
  correlation across candidates (what a per-candidate interval would suggest);
- **a trial per candidate**: unbiased, independent errors of the size an on-policy mean of the
  same evaluated patients would have (sd of a +-1 outcome's mean, 2 sqrt(p (1 - p) / n)): the
  best any off-policy estimator could do with these candidates and this many patients.

Nothing is fitted; it reads `coverage.json` (truths) and `replicates/rep_*.json`.

    python benchmarks/ranking_limits.py /tmp/clinical_mborl_studies/pilot_history_hourly \
        /tmp/clinical_mborl_studies/pilot_history5000_hourly
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_compare import truths as study_truths  # noqa: E402

DRAWS = 4000


def mean_spearman(values: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([spearmanr(v, truth).statistic for v in values]))


def limits(study: str, estimator: str, seed: int = 0) -> dict[str, float]:
    truths, _ = study_truths(study)
    names = list(truths)
    truth = np.array([truths[c] for c in names])
    values, evaluated = [], []
    for path in sorted(glob.glob(os.path.join(study, "replicates", "rep_*.json"))):
        with open(path) as f:
            rep = json.load(f)
        if "candidates" not in rep:
            continue
        values.append([rep["candidates"][c]["estimates"][estimator]["value"] for c in names])
        evaluated.append(rep["n_patients_eval"])
    est = np.array(values, dtype=np.float64)
    bias, sd = est.mean(axis=0) - truth, est.std(axis=0, ddof=1)
    rng = np.random.default_rng(seed)
    p = (1.0 + truth) / 2.0
    trial_sd = 2.0 * np.sqrt(p * (1.0 - p) / float(np.mean(evaluated)))
    return {
        "replicates": float(len(est)),
        "measured": mean_spearman(est, truth),
        "bias removed": mean_spearman(est - bias, truth),
        "noise removed": float(spearmanr(truth + bias, truth).statistic),
        "independent noise": mean_spearman(truth + rng.normal(size=(DRAWS, truth.size)) * sd, truth),
        "a trial per candidate": mean_spearman(truth + rng.normal(size=(DRAWS, truth.size)) * trial_sd, truth),
        "error correlation": float(np.mean(np.corrcoef((est - est.mean(axis=0)).T)[np.triu_indices(truth.size, 1)])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", help="coverage study folders (coverage.json + replicates/)")
    parser.add_argument("--estimator", default="fqe")
    args = parser.parse_args()
    rows = {s: limits(s, args.estimator) for s in args.studies}
    keys = list(next(iter(rows.values())))
    print("| " + " | ".join(["study", *keys]) + " |")
    print("|" + "---|" * (len(keys) + 1))
    for study, row in rows.items():
        cells = [f"{int(row[k])}" if k == "replicates" else f"{row[k]:.3f}" for k in keys]
        print("| " + " | ".join([os.path.basename(study.rstrip("/")), *cells]) + " |")


if __name__ == "__main__":
    main()
