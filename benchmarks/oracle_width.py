"""Could any interval centred on FQE's estimate meet issue 5's targets? An oracle-width bound.

The coverage studies measured, per candidate, FQE's bias b and its standard deviation s across
data sets. Give FQE the best interval a width rule could give it: estimate -+ k * 1.96 * s with
the *true* s (no estimation noise in the width), normal errors. Then

    coverage(k)          = Phi(k z - b/s) - Phi(-k z - b/s),      z = 1.96
    lower bound valid(k) = Phi(k z1 - b_diff/s),                   z1 = 1.645

(the paired difference's lower bound, with its own bias b_diff against the clinicians' on-policy
mean; its sd is taken as the value's, which the studies show within a few per cent). k = 1 is a
perfectly sized interval. The script reports, for each study table:

- every candidate at k = 1 (what calibration alone could reach);
- the smallest k that makes the lower bound valid in >= 95% for every candidate worse than the
  clinician, and the coverage every candidate then has;
- the smallest k that gives every candidate coverage >= 90%;
- the largest k that keeps every candidate's coverage <= 98%.

If either of the first two exceeds the third, no interval of the form "FQE -+ a fixed common
multiple of its true sd" meets both targets: bias, not the size of the sd, decides. Widths that vary
between data sets (Rubin's rules with few degrees of freedom) respond to bias less steeply and are
not covered by this bound. Nothing here is fitted; it reads the study JSONs.

    python benchmarks/oracle_width.py benchmarks/results/coverage_N1000.json benchmarks/results/coverage_N5000.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.optimize import brentq
from scipy.stats import norm

Z2, Z1 = norm.ppf(0.975), norm.ppf(0.95)


def coverage(k: float, bias: float, sd: float) -> float:
    return float(norm.cdf(k * Z2 - bias / sd) - norm.cdf(-k * Z2 - bias / sd))


def lower_valid(k: float, bias: float, sd: float) -> float:
    return float(norm.cdf(k * Z1 - bias / sd))


def rows(study: dict, estimator: str) -> list[dict]:
    return [r for r in study["coverage"] if r["estimator"] == estimator and r["candidate"] != "clinician"]


def smallest_k_for_lower_bounds(worse: list[dict], target: float = 0.95) -> float:
    need = [brentq(lambda k, r=r: lower_valid(k, r["difference_bias"], r["sd"]) - target, 1e-6, 50) for r in worse]
    return max(need, default=0.0)


def largest_k_for_coverage(cands: list[dict], cap: float = 0.98) -> float:
    return min(brentq(lambda k, r=r: coverage(k, r["bias"], r["sd"]) - cap, 1e-6, 50) for r in cands)


def smallest_k_for_coverage(cands: list[dict], floor: float = 0.90) -> float:
    return max(brentq(lambda k, r=r: coverage(k, r["bias"], r["sd"]) - floor, 1e-6, 50) for r in cands)


def report(path: Path, estimator: str) -> str:
    study = json.loads(path.read_text())
    cands = rows(study, estimator)
    worse = [r for r in cands if r["truth_difference"] < 0]
    k_lb, k_cov = smallest_k_for_lower_bounds(worse), largest_k_for_coverage(cands)
    k_floor = smallest_k_for_coverage(cands)
    k_low = max(k_lb, k_floor)
    n = study["config"]["patients"]
    lines = [f"## {path.name}: {estimator}, N = {n}, R = {study['n_replicates']}", "",
             "| candidate | true Δ | bias | Δ bias | sd | coverage, k = 1 | Δ LB valid, k = 1 "
             f"| coverage at k = {k_lb:.2f} | measured coverage |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(cands, key=lambda r: r["truth_difference"]):
        lines.append(
            f"| {r['candidate']} | {r['truth_difference']:+.3f} | {r['bias']:+.3f} | {r['difference_bias']:+.3f} "
            f"| {r['sd']:.3f} | {coverage(1, r['bias'], r['sd']):.1%} | "
            f"{lower_valid(1, r['difference_bias'], r['sd']):.1%} | {coverage(k_lb, r['bias'], r['sd']):.1%} "
            f"| {r['coverage']:.1%} |")
    verdict = ("no common width multiple meets both targets" if k_low > k_cov
               else f"any k in [{k_low:.2f}, {k_cov:.2f}] would meet both, given the true sd")
    lines += ["", f"- smallest k with every worse candidate's Δ lower bound valid >= 95%: **{k_lb:.2f}**",
              f"- smallest k with every candidate's coverage >= 90%: **{k_floor:.2f}**",
              f"- largest k with every candidate's coverage <= 98%: **{k_cov:.2f}**",
              f"- {verdict}.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", type=Path, nargs="+", help="coverage study JSONs (benchmarks/results/)")
    p.add_argument("--estimator", default="fqe")
    a = p.parse_args()
    print("\n".join(report(path, a.estimator) for path in a.studies))


if __name__ == "__main__":
    main()
