"""Compare two coverage studies replicate by replicate (same seeds, so the same data sets).

Prints, per estimator and candidate: n, bias (new/old), sd across data sets, two-sided coverage,
one-sided lower-bound validity and mean width, all against the old study's truths (the clinician's
truth is usual care). Used for the pilots in `benchmarks/results/pilots_N1000.md`.

Run: .venv/bin/python benchmarks/paired_compare.py NEW_STUDY_DIR OLD_STUDY_DIR
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np


def main() -> None:
    new_dir, old_dir = sys.argv[1], sys.argv[2]
    with open(os.path.join(old_dir, "coverage.json")) as f:
        truth = {k: v["value"] for k, v in json.load(f)["truths"].items()}
    rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for path in sorted(glob.glob(os.path.join(new_dir, "replicates", "rep_*.json"))):
        with open(path) as f:
            new = json.load(f)
        with open(os.path.join(old_dir, "replicates", os.path.basename(path))) as f:
            old = json.load(f)
        for cand, rec in new.get("candidates", {}).items():
            t = truth[cand]
            for est, e in rec["estimates"].items():
                o = old["candidates"][cand]["estimates"].get(est)
                if o is None or e["value"] is None or o["value"] is None:
                    continue

                def cov(x: dict, t: float = t) -> bool:
                    return x["ci_low"] is not None and x["ci_low"] <= t <= x["ci_high"]

                def lb(x: dict, t: float = t) -> bool:
                    return x["lower_bound"] is not None and x["lower_bound"] <= t

                rows.setdefault((est, cand), []).append(
                    (e["value"] - t, o["value"] - t, cov(e), cov(o), lb(e), lb(o),
                     e["ci_high"] - e["ci_low"], o["ci_high"] - o["ci_low"]))
    print(f"{'est':12s} {'cand':18s} n  bias new/old   sd new/old   cov new/old  LB new/old  width new/old")
    for (est, cand), r in sorted(rows.items()):
        a = np.array(r, dtype=float)
        print(f"{est:12s} {cand:18s} {len(a):2d} {a[:, 0].mean():+.3f}/{a[:, 1].mean():+.3f}  "
              f"{a[:, 0].std():.3f}/{a[:, 1].std():.3f}  {a[:, 2].mean():.2f}/{a[:, 3].mean():.2f}  "
              f"{a[:, 4].mean():.2f}/{a[:, 5].mean():.2f}  {a[:, 6].mean():.3f}/{a[:, 7].mean():.3f}")


if __name__ == "__main__":
    main()
