"""Compare two coverage studies replicate by replicate (same seeds, so the same data sets).

Prints, per estimator and candidate: n, bias (new/old), sd across data sets, two-sided coverage,
one-sided lower-bound validity, paired-difference lower-bound validity and mean width. Each study
is scored against its own truths (they differ only when the change alters the reference, e.g. a
cohort spec; the clinician's truth is usual care). Estimators only the new study ran (e.g. the
sensitivity intervals `fqe_msm*`) get "-" in the old columns. Used for the pilots in
`benchmarks/results/pilots_N1000.md`.

Run: .venv/bin/python benchmarks/paired_compare.py NEW_STUDY_DIR OLD_STUDY_DIR [ESTIMATOR ...]
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np


def truths(study: str) -> tuple[dict[str, float], dict[str, float]]:
    """(value, difference vs clinician) per candidate from a study's coverage.json."""
    with open(os.path.join(study, "coverage.json")) as f:
        t = {k: v["value"] for k, v in json.load(f)["truths"].items()}
    return t, {k: v - t["clinician"] for k, v in t.items()}


def scores(e: dict | None, t: float, dt: float) -> tuple[float, ...]:
    """(error, covered, LB valid, paired LB valid, width) of one entry; NaNs where undefined."""
    if e is None or e.get("value") is None or e.get("ci_low") is None or e.get("ci_high") is None:
        return (np.nan,) * 5
    dlb = e.get("diff_lower_bound")
    return (e["value"] - t, float(e["ci_low"] <= t <= e["ci_high"]),
            float(e["lower_bound"] is not None and e["lower_bound"] <= t),
            np.nan if dlb is None else float(dlb <= dt), e["ci_high"] - e["ci_low"])


def main() -> None:
    new_dir, old_dir, only = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    (t_new, d_new), (t_old, d_old) = truths(new_dir), truths(old_dir)
    rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for path in sorted(glob.glob(os.path.join(new_dir, "replicates", "rep_*.json"))):
        with open(path) as f:
            new = json.load(f)
        with open(os.path.join(old_dir, "replicates", os.path.basename(path))) as f:
            old = json.load(f)
        for cand, rec in new.get("candidates", {}).items():
            for est, e in rec["estimates"].items():
                if only and est not in only:
                    continue
                o = old["candidates"][cand]["estimates"].get(est)
                rows.setdefault((est, cand), []).append(
                    scores(e, t_new[cand], d_new[cand]) + scores(o, t_old[cand], d_old[cand]))

    def pair(a: np.ndarray, i: int, fmt: str, sd: bool = False) -> str:
        cols = []
        for j in (i, i + 5):
            x = a[:, j][np.isfinite(a[:, j])]
            cols.append("-" if x.size == 0 else format(x.std() if sd else x.mean(), fmt))
        return "/".join(cols)

    print(f"{'est':12s} {'cand':18s} n  bias new/old    sd new/old   cov new/old  LB new/old  dLB new/old  width new/old")
    for (est, cand), r in sorted(rows.items()):
        a = np.array(r, dtype=float)
        print(f"{est:12s} {cand:18s} {len(a):2d} {pair(a, 0, '+.3f'):14s} {pair(a, 0, '.3f', True):12s} "
              f"{pair(a, 1, '.2f'):11s} {pair(a, 2, '.2f'):11s} {pair(a, 3, '.2f'):11s} {pair(a, 4, '.3f')}")


if __name__ == "__main__":
    main()
