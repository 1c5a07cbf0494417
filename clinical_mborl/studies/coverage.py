"""Coverage arithmetic: how the estimators' intervals behave against the simulator's truth.

Per estimator and candidate, over the replicates where the estimator was defined:

- coverage: share of replicates whose two-sided interval [ci_low, ci_high] contains the true value;
- lower-bound validity: share whose one-sided lower bound is <= the true value (the bound is
  valid at 95% if this is >= 0.95); the same two for the paired difference against the
  clinician (the statistic the gate uses) against the true difference;
- width (mean ci_high - ci_low), bias (mean estimate - truth), RMSE, SD, mean Kish ESS.

Proportions carry a Wilson 95% interval (their Monte Carlo error over R replicates). Ranking:
per replicate, the Spearman correlation between an estimator's values and the true values across
all candidates (mean, median and share >= 0.8 over replicates).

Gate estimator (`select_gate_estimator`): among the estimators run on every candidate, those whose
two-sided coverage lies in [0.90, 0.98] for every non-clinician candidate AND whose paired-difference
lower bound holds in >= 95% of replicates for every candidate truly worse than the clinician
(true difference below -2 MC SE); the narrowest of them. The clinician's own row is reported, not
used: its estimand (the on-policy mean) is not a candidate the gate decides on.

>>> rows = coverage_rows([{"candidates": {"p": {"estimates": {"wis": {"value": 0.5, "ci_low": 0.4,
...     "ci_high": 0.6, "lower_bound": 0.45, "ess": 10.0}}}}}], {"p": (0.55, 0.0)}, {"p": (0.0, 0.0)})
>>> rows[0].coverage, rows[0].lower_bound_valid, round(rows[0].bias, 2)
(1.0, 1.0, -0.05)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field
from scipy.stats import spearmanr

from clinical_mborl.core.models import StrictModel
from clinical_mborl.simulators.sepsis.ground_truth import wilson_interval

COVERAGE_RANGE = (0.90, 0.98)
LOWER_BOUND_TARGET = 0.95
SPEARMAN_TARGET = 0.8


class CoverageRow(StrictModel):
    """One estimator on one candidate, over the replicates."""

    estimator: str
    candidate: str
    truth: float
    truth_mc_se: float
    truth_difference: float
    n_replicates: int
    n_defined: int = Field(description="Replicates where the estimate and its interval were defined.")
    coverage: float | None
    coverage_ci: tuple[float, float] | None
    lower_bound_valid: float | None
    lower_bound_valid_ci: tuple[float, float] | None
    difference_coverage: float | None
    difference_lower_bound_valid: float | None
    difference_lower_bound_valid_ci: tuple[float, float] | None
    mean_width: float | None
    bias: float | None
    rmse: float | None
    sd: float | None
    difference_bias: float | None
    mean_ess: float | None
    projected_share: float | None = Field(None, description="Share of the defined replicates whose estimate "
                                          "lay outside the return range and was projected onto it.")


class RankingRow(StrictModel):
    estimator: str
    n_replicates: int
    spearman_mean: float | None
    spearman_median: float | None
    share_at_least_target: float | None
    spearman_mean_range: tuple[float, float] | None = Field(
        None, description="Lowest and highest mean Spearman over the true orderings that the truths' Monte "
        "Carlo error leaves open (each unresolved pair in either order); None when every pair is resolved.")
    spearman_lower_bound_mean: float | None = Field(
        None, description="Mean Spearman of the order the scoring table gives (`scoring.rank_rows`: by the "
        "one-sided lower bound of the paired difference to the clinician, the clinician at 0) with the truths; "
        "None where the estimator has no paired lower bound. A pessimistic order by design: a candidate with a "
        "wide interval ranks low whatever its value.")


class TruthPair(StrictModel):
    """Two candidates whose true order the truths' Monte Carlo error does not settle."""

    higher: str
    lower: str
    difference: float = Field(description="Truth of `higher` minus truth of `lower` (>= 0).")
    mc_se: float = Field(description="Monte Carlo SE of the difference (`studies.truth.paired_difference`).")


class OverlapRow(StrictModel):
    """Importance-weight diagnostics of one candidate over the replicates (why IS works or fails)."""

    candidate: str
    n_replicates: int
    ess_mean: float | None
    ess_median: float | None
    ess_min_step_mean: float | None = Field(description="Smallest per-decision ESS over steps (PDWIS/WDR).")
    max_weight_share_mean: float | None
    support_outside_mean: float | None = Field(description="Share of recommended steps the clinician gives "
                                                           "probability below the support threshold.")


class GateEstimatorChoice(StrictModel):
    """Which estimator meets the gate's targets, with the figures behind the choice."""

    chosen: str | None
    meets_targets: bool
    qualifying: list[str]
    worse_candidates: list[str]
    per_estimator: dict[str, dict[str, Any]]
    best_ranking: str | None
    best_spearman: float | None
    reason: str


def _share(flags: np.ndarray) -> tuple[float | None, tuple[float, float] | None]:
    if flags.size == 0:
        return None, None
    p, lo, hi = wilson_interval(int(flags.sum()), int(flags.size))
    return float(p), (float(lo), float(hi))


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if x.size else None


def _field(entries: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if e.get(key) is None else float(e[key]) for e in entries], dtype=np.float64)


def ok_replicates(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replicates that produced estimates (not an error)."""
    return [r for r in results if "error" not in r and "candidates" in r]


def coverage_rows(results: Sequence[dict[str, Any]], truths: Mapping[str, tuple[float, float]],
                  differences: Mapping[str, tuple[float, float]]) -> list[CoverageRow]:
    """Rows for every (estimator, candidate); `truths`/`differences` map candidate -> (value, MC SE)."""
    reps = ok_replicates(results)
    rows = []
    for cand, (truth, se) in truths.items():
        names = sorted({e for r in reps if cand in r["candidates"] for e in r["candidates"][cand]["estimates"]})
        for est in names:
            entries = [r["candidates"][cand]["estimates"].get(est, {}) for r in reps if cand in r["candidates"]]
            v, lo, hi, lb = (_field(entries, k) for k in ("value", "ci_low", "ci_high", "lower_bound"))
            d, dlo, dhi, dlb = (_field(entries, k) for k in ("diff", "diff_ci_low", "diff_ci_high",
                                                              "diff_lower_bound"))
            ok = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi) & np.isfinite(lb)
            # the clinician against itself: zero by construction (up to rounding), not a finding
            dok = np.isfinite(d) & np.isfinite(dlo) & np.isfinite(dhi) & np.isfinite(dlb) & (cand != "clinician")
            true_d = differences[cand][0]
            cov, cov_ci = _share((lo[ok] <= truth) & (truth <= hi[ok]))
            lbv, lbv_ci = _share(lb[ok] <= truth)
            dcov, _ = _share((dlo[dok] <= true_d) & (true_d <= dhi[dok]))
            dlbv, dlbv_ci = _share(dlb[dok] <= true_d)
            err = v[ok] - truth
            ess, projected = _field(entries, "ess"), _field(entries, "projected")[ok]
            rows.append(CoverageRow(
                estimator=est, candidate=cand, truth=truth, truth_mc_se=se, truth_difference=true_d,
                n_replicates=len(entries), n_defined=int(ok.sum()), coverage=cov, coverage_ci=cov_ci,
                lower_bound_valid=lbv, lower_bound_valid_ci=lbv_ci, difference_coverage=dcov,
                difference_lower_bound_valid=dlbv, difference_lower_bound_valid_ci=dlbv_ci,
                mean_width=_mean(hi[ok] - lo[ok]), bias=_mean(err),
                rmse=float(np.sqrt(np.mean(err**2))) if err.size else None,
                sd=float(np.std(v[ok], ddof=1)) if ok.sum() > 1 else None,
                difference_bias=_mean(d[dok] - true_d), mean_ess=_mean(ess[np.isfinite(ess)]),
                projected_share=_mean(projected[np.isfinite(projected)]),
            ))
    return rows


MAX_UNRESOLVED_PAIRS = 8
"""Unresolved truth pairs beyond which `ranking_rows` does not enumerate the orderings (2^k)."""


def ranking_rows(results: Sequence[dict[str, Any]], truths: Mapping[str, float],
                 unresolved: Sequence[TruthPair] = ()) -> list[RankingRow]:
    """Per-replicate Spearman correlation of each estimator's values with the truths, across candidates.

    `unresolved`: candidate pairs whose true order is within the truths' Monte Carlo error; the mean
    Spearman is also computed with each subset of them swapped (`spearman_mean_range`).

    >>> reps = [{"candidates": {c: {"estimates": {"e": {"value": v}}} for c, v in zip("abc", x)}}
    ...         for x in ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.3, 0.2])]
    >>> row = ranking_rows(reps, {"a": 0.1, "b": 0.2, "c": 0.21}, [TruthPair(higher="c", lower="b",
    ...                    difference=0.01, mc_se=0.01)])[0]
    >>> round(row.spearman_mean, 3), [round(x, 3) for x in row.spearman_mean_range]
    (0.833, [0.667, 0.833])
    """
    reps = ok_replicates(results)
    names = list(truths)
    estimators = sorted({e for r in reps for c in names if c in r["candidates"]
                         for e in r["candidates"][c]["estimates"]})
    target = np.array([truths[c] for c in names])
    orderings = _truth_orderings(target, names, unresolved)
    out = []
    for est in estimators:
        values = _candidate_vectors(reps, names, est, "value")
        means = []
        for truth in [target, *orderings]:
            rhos = [spearmanr(v, truth).statistic for v in values]
            means.append([float(x) for x in rhos if np.isfinite(x)])
        arr = np.array(means[0])
        if not arr.size:
            continue  # e.g. the clinician-only on-policy estimate: no ranking across candidates
        span = [float(np.mean(m)) for m in means if m]
        # the key the scoring table ranks by; the clinician's own paired difference is 0 by definition
        by_bound = [spearmanr(b, target).statistic
                    for b in _candidate_vectors(reps, names, est, "diff_lower_bound", clinician=0.0)]
        out.append(RankingRow(estimator=est, n_replicates=arr.size, spearman_mean=_mean(arr),
                              spearman_median=float(np.median(arr)), share_at_least_target=_mean(arr >= SPEARMAN_TARGET),
                              spearman_mean_range=(min(span), max(span)) if orderings else None,
                              spearman_lower_bound_mean=_mean(np.array([x for x in by_bound if np.isfinite(x)]))))
    return out


def _candidate_vectors(reps: Sequence[dict[str, Any]], names: list[str], est: str, key: str,
                       clinician: float | None = None) -> list[np.ndarray]:
    """Per replicate where every candidate has a finite `key` of estimator `est`, those numbers in
    the order of `names`; `clinician`, when given, stands in for the clinician's own entry."""
    out = []
    for r in reps:
        nums = [clinician if c == "clinician" and clinician is not None else
                r["candidates"].get(c, {}).get("estimates", {}).get(est, {}).get(key) for c in names]
        if not any(x is None or not math.isfinite(x) for x in nums):
            out.append(np.array(nums, dtype=np.float64))
    return out


def _truth_orderings(target: np.ndarray, names: list[str], unresolved: Sequence[TruthPair]) -> list[np.ndarray]:
    """The truth vector with each non-empty subset of the unresolved pairs swapped."""
    pairs = [(names.index(p.higher), names.index(p.lower)) for p in unresolved
             if p.higher in names and p.lower in names][:MAX_UNRESOLVED_PAIRS]
    out = []
    for mask in range(1, 2 ** len(pairs)):
        truth = target.copy()
        for bit, (i, j) in enumerate(pairs):
            if mask >> bit & 1:
                truth[[i, j]] = truth[[j, i]]
        out.append(truth)
    return out


def overlap_rows(results: Sequence[dict[str, Any]], candidates: Sequence[str]) -> list[OverlapRow]:
    """Mean (and median) overlap diagnostics per candidate."""
    reps = ok_replicates(results)
    out = []
    for cand in candidates:
        diags = [r["candidates"][cand].get("overlap", {}) for r in reps if cand in r["candidates"]]
        cols = {k: _field(diags, k) for k in ("ess", "ess_min_step", "max_weight_share", "support_share_outside")}
        fin = {k: v[np.isfinite(v)] for k, v in cols.items()}
        out.append(OverlapRow(candidate=cand, n_replicates=len(diags), ess_mean=_mean(fin["ess"]),
                              ess_median=float(np.median(fin["ess"])) if fin["ess"].size else None,
                              ess_min_step_mean=_mean(fin["ess_min_step"]),
                              max_weight_share_mean=_mean(fin["max_weight_share"]),
                              support_outside_mean=_mean(fin["support_share_outside"])))
    return out


def worse_than_clinician(differences: Mapping[str, tuple[float, float]]) -> list[str]:
    """Candidates whose true difference against the clinician is below -2 Monte Carlo SE."""
    return [c for c, (d, se) in differences.items() if c != "clinician" and d < -2.0 * se]


def select_gate_estimator(rows: Sequence[CoverageRow], ranking: Sequence[RankingRow],
                          differences: Mapping[str, tuple[float, float]],
                          max_width: float = float("inf")) -> GateEstimatorChoice:
    """Apply the gate targets (module text) to every estimator; pick the narrowest that meets them.

    When none does, the fallback is the informative estimator (mean interval width at most
    `max_width`, e.g. the width of the return range) whose paired lower bound holds most often
    on the worse candidates: an interval wider than every possible return says nothing.
    """
    worse = worse_than_clinician(differences)
    candidates = [c for c in differences if c != "clinician"]
    per: dict[str, dict[str, Any]] = {}
    for est in sorted({r.estimator for r in rows}):
        mine = {r.candidate: r for r in rows if r.estimator == est}
        if any(c not in mine or mine[c].coverage is None for c in candidates):
            continue
        cov = [mine[c].coverage for c in candidates]
        dlb = [mine[c].difference_lower_bound_valid for c in worse]
        vlb = [mine[c].lower_bound_valid for c in worse]
        cov_ok = all(COVERAGE_RANGE[0] <= float(x) <= COVERAGE_RANGE[1] for x in cov)  # type: ignore[arg-type]
        lb_ok = all(x is not None and x >= LOWER_BOUND_TARGET for x in dlb)
        per[est] = {
            "coverage_min": min(cov), "coverage_max": max(cov),  # type: ignore[type-var]
            "difference_lower_bound_valid_min_worse": min((x for x in dlb if x is not None), default=None),
            "value_lower_bound_valid_min_worse": min((x for x in vlb if x is not None), default=None),
            "mean_width": float(np.mean([mine[c].mean_width or np.nan for c in candidates])),
            "coverage_ok": cov_ok, "lower_bound_ok": lb_ok,
        }
    qualifying = sorted((e for e, p in per.items() if p["coverage_ok"] and p["lower_bound_ok"]),
                        key=lambda e: per[e]["mean_width"])
    ranked = [r for r in ranking if r.spearman_mean is not None]
    best = max(ranked, key=lambda r: r.spearman_mean or -2.0) if ranked else None
    if qualifying:
        chosen, reason = qualifying[0], "meets both targets; the narrowest of those that do"
    elif any(p["mean_width"] <= max_width for p in per.values()):
        def score(e: str) -> tuple[float, float]:
            p = per[e]
            lbm = p["difference_lower_bound_valid_min_worse"]
            return (lbm if lbm is not None else -1.0, -abs(0.5 * (p["coverage_min"] + p["coverage_max"]) - 0.95))

        chosen = max((e for e in per if per[e]["mean_width"] <= max_width), key=score)
        reason = ("no estimator meets both targets; of those whose intervals are narrower than the return "
                  "range, this one has the highest paired lower-bound validity on the worse-than-clinician "
                  "candidates (then coverage closest to 0.95)")
    else:
        chosen, reason = None, "no estimator ran on every candidate with informative intervals"
    return GateEstimatorChoice(
        chosen=chosen, meets_targets=bool(qualifying), qualifying=qualifying, worse_candidates=worse,
        per_estimator=per, best_ranking=best.estimator if best else None,
        best_spearman=best.spearman_mean if best else None, reason=reason,
    )
