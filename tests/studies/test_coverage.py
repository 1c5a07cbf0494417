"""Coverage arithmetic on synthetic replicates with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from clinical_mborl.studies.coverage import (
    TruthPair,
    coverage_rows,
    ranking_rows,
    select_gate_estimator,
    worse_than_clinician,
)
from clinical_mborl.studies.gate_summary import gate_rows, gate_verdict


def entry(value: float, lo: float, hi: float, lb: float, diff: float | None = None, ess: float | None = None) -> dict:
    e = {"value": value, "ci_low": lo, "ci_high": hi, "lower_bound": lb, "ess": ess}
    if diff is not None:
        e.update(diff=diff, diff_ci_low=diff - (value - lo), diff_ci_high=diff + (hi - value),
                 diff_lower_bound=diff - (value - lb))
    return e


def replicates(values: dict[str, list[dict]]) -> list[dict]:
    """values: candidate -> one `entry` per replicate, all for estimator 'wis'."""
    n = len(next(iter(values.values())))
    return [{"replicate": i, "candidates": {c: {"estimates": {"wis": v[i]}} for c, v in values.items()}}
            for i in range(n)]


def test_coverage_validity_width_bias_and_rmse_by_hand():
    truth = 0.5
    reps = replicates({"p": [entry(0.45, 0.40, 0.55, 0.42, ess=10.0),   # covers, LB valid
                             entry(0.70, 0.60, 0.80, 0.62, ess=20.0),   # misses above, LB invalid
                             entry(0.30, 0.20, 0.45, 0.22, ess=30.0),   # misses below, LB valid
                             entry(0.55, 0.50, 0.60, 0.50)]})           # covers at the edge, LB valid (<=)
    reps.append({"replicate": 9, "error": "refused"})                   # errors are not replicates
    row = coverage_rows(reps, {"p": (truth, 0.01)}, {"p": (0.0, 0.0)})[0]
    assert (row.n_replicates, row.n_defined) == (4, 4)
    assert row.coverage == pytest.approx(0.5)
    assert row.lower_bound_valid == pytest.approx(0.75)
    assert row.mean_width == pytest.approx(np.mean([0.15, 0.2, 0.25, 0.1]))
    err = np.array([0.45, 0.70, 0.30, 0.55]) - truth
    assert row.bias == pytest.approx(err.mean())
    assert row.rmse == pytest.approx(np.sqrt((err**2).mean()))
    assert row.mean_ess == pytest.approx(20.0)
    assert row.coverage_ci[0] < 0.5 < row.coverage_ci[1]
    assert row.difference_coverage is None  # no paired differences in these replicates


def test_undefined_estimates_are_left_out_and_counted():
    reps = replicates({"p": [entry(0.5, 0.4, 0.6, 0.45), {"value": None, "ci_low": None, "ci_high": None,
                                                          "lower_bound": None}]})
    row = coverage_rows(reps, {"p": (0.5, 0.0)}, {"p": (0.0, 0.0)})[0]
    assert (row.n_replicates, row.n_defined, row.coverage) == (2, 1, 1.0)


def test_paired_difference_is_judged_against_the_true_difference():
    reps = replicates({"p": [entry(0.3, 0.2, 0.4, 0.25, diff=-0.10), entry(0.3, 0.2, 0.4, 0.25, diff=0.20)]})
    row = coverage_rows(reps, {"p": (0.3, 0.0)}, {"p": (-0.12, 0.01)})[0]
    # intervals of the difference: [-0.2, 0.0] covers -0.12; [0.1, 0.3] does not; LBs -0.15 ok, 0.15 not
    assert row.difference_coverage == pytest.approx(0.5)
    assert row.difference_lower_bound_valid == pytest.approx(0.5)
    assert row.truth_difference == -0.12


def test_spearman_is_computed_per_replicate_across_candidates():
    truths = {"a": 0.1, "b": 0.2, "c": 0.3}
    right = {c: entry(v, v - 0.1, v + 0.1, v - 0.05) for c, v in truths.items()}
    reversed_ = {c: entry(0.4 - v, 0.0, 1.0, 0.0) for c, v in truths.items()}
    reps = [{"candidates": {c: {"estimates": {"wis": right[c]}} for c in truths}},
            {"candidates": {c: {"estimates": {"wis": reversed_[c]}} for c in truths}}]
    row = ranking_rows(reps, truths)[0]
    assert (row.n_replicates, row.spearman_mean, row.spearman_median, row.share_at_least_target) == (2, 0.0, 0.0, 0.5)


def test_spearman_range_swaps_each_unresolved_truth_pair():
    truths = {"a": 0.1, "b": 0.2, "c": 0.21, "d": 0.5}
    # every replicate puts c below b: right only if the near-tie b/c is truly ordered the other way
    reps = [{"candidates": {c: {"estimates": {"wis": entry(v, 0.0, 1.0, 0.0)}}
                            for c, v in {"a": 0.1, "b": 0.3, "c": 0.2, "d": 0.6}.items()}}]
    row = ranking_rows(reps, truths, [TruthPair(higher="c", lower="b", difference=0.01, mc_se=0.01)])[0]
    assert row.spearman_mean == pytest.approx(0.8)
    assert row.spearman_mean_range == pytest.approx((0.8, 1.0))
    assert ranking_rows(reps, truths)[0].spearman_mean_range is None
    two = [TruthPair(higher="c", lower="b", difference=0.01, mc_se=0.01),
           TruthPair(higher="d", lower="a", difference=0.4, mc_se=0.3)]
    # four orders: as is 0.8, b/c swapped 1.0, a/d swapped -1.0, both -0.8
    assert ranking_rows(reps, truths, two)[0].spearman_mean_range == pytest.approx((-1.0, 1.0))


def test_scoring_table_order_ranks_by_the_paired_lower_bound_with_the_clinician_at_zero():
    truths = {"clinician": 0.5, "worse": 0.4, "better": 0.6, "best": 0.7}
    # the values are in the true order, but the best candidate's interval is so wide that its paired
    # lower bound falls below the worse candidate's: the scoring table puts it last
    values = {"clinician": entry(0.5, 0.45, 0.55, 0.46, diff=0.0), "worse": entry(0.4, 0.35, 0.45, 0.36, diff=-0.1),
              "better": entry(0.6, 0.55, 0.65, 0.56, diff=0.1), "best": entry(0.7, -1.0, 1.0, -0.9, diff=0.2)}
    reps = [{"candidates": {c: {"estimates": {"wis": e}} for c, e in values.items()}}]
    row = ranking_rows(reps, truths)[0]
    assert row.spearman_mean == pytest.approx(1.0)
    # lower bounds: clinician 0 (by definition, whatever its own entry says), worse -0.14, better 0.06,
    # best -1.4: ranks (clinician, worse, better, best) 3, 2, 4, 1 against the truth's 2, 1, 3, 4;
    # squared rank differences 1 + 1 + 1 + 9 = 12, rho = 1 - 6 * 12 / (4 * 15) = -0.2
    assert row.spearman_lower_bound_mean == pytest.approx(-0.2)
    no_bounds = [{"candidates": {c: {"estimates": {"wis": entry(truths[c], 0.0, 1.0, 0.0)}} for c in truths}}]
    assert ranking_rows(no_bounds, truths)[0].spearman_lower_bound_mean is None


def test_gate_estimator_selection_applies_both_targets():
    diffs = {"clinician": (0.0, 0.0), "bad": (-0.1, 0.01), "good": (0.1, 0.01)}
    truths = {"clinician": (0.5, 0.01), "bad": (0.4, 0.01), "good": (0.6, 0.01)}

    def reps_for(bad_lb_ok: int, good_cover: int, n: int = 20) -> list[dict]:
        out = []
        for i in range(n):
            bad_lb = 0.3 if i < bad_lb_ok else 0.45         # value LB; diff LB = diff - 0.1
            bad = entry(0.4, 0.3, 0.5, bad_lb, diff=-0.1) if i < n - 1 else entry(0.6, 0.55, 0.65, 0.3, diff=-0.1)
            good = entry(0.6, 0.5, 0.7, 0.55, diff=0.1) if i < good_cover else entry(0.9, 0.8, 1.0, 0.85, diff=0.4)
            out.append({"candidates": {"bad": {"estimates": {"x": bad}}, "good": {"estimates": {"x": good}},
                                       "clinician": {"estimates": {"x": entry(0.5, 0.4, 0.6, 0.45, diff=0.0)}}}})
        return out

    ok = coverage_rows(reps_for(20, 19), truths, diffs)
    choice = select_gate_estimator(ok, ranking_rows(reps_for(20, 19), {c: v for c, (v, _) in truths.items()}), diffs)
    assert choice.worse_candidates == ["bad"] and choice.chosen == "x" and choice.meets_targets
    bad_lb = coverage_rows(reps_for(17, 19), truths, diffs)  # diff LB valid in 90% for the worse candidate
    miss = select_gate_estimator(bad_lb, [], diffs)
    assert not miss.meets_targets and miss.chosen == "x" and "no estimator meets" in miss.reason
    assert miss.per_estimator["x"]["difference_lower_bound_valid_min_worse"] == pytest.approx(0.9)
    low_cov = coverage_rows(reps_for(20, 17), truths, diffs)  # coverage 85% on 'good'
    assert not select_gate_estimator(low_cov, [], diffs).meets_targets
    uninformative = select_gate_estimator(bad_lb, [], diffs, max_width=0.05)  # every interval is 0.1 wide
    assert uninformative.chosen is None and not uninformative.meets_targets


def test_worse_needs_a_difference_beyond_monte_carlo_error():
    assert worse_than_clinician({"clinician": (0.0, 0.0), "a": (-0.05, 0.01), "b": (-0.01, 0.01)}) == ["a"]


def test_gate_rows_and_verdict():
    def rep(status_bad: str, status_good: str) -> dict:
        return {"candidates": {
            "bad": {"gate": {"status": status_bad, "failed": ["ESS floor"] if status_bad == "fail" else [],
                             "inconclusive": ["estimator agreement"] if status_bad == "inconclusive" else []}},
            "cql": {"gate": {"status": status_good, "failed": [], "inconclusive": []}}}}
    reps = [rep("fail", "pass")] * 18 + [rep("inconclusive", "fail"), rep("pass", "fail")]
    rows = {r.candidate: r for r in gate_rows(reps, {"bad": (-0.1, 0.01), "cql": (0.05, 0.01)})}
    assert rows["bad"].refused == pytest.approx(0.95) and rows["bad"].inconclusive == pytest.approx(0.05)
    assert rows["bad"].check_rates == {"ESS floor": 0.9, "estimator agreement": 0.05}
    assert rows["bad"].passed_without_overlap == pytest.approx(0.95)  # 18 overlap-only + 1 pass
    verdict = gate_verdict(list(rows.values()), learned=["cql"])
    assert verdict.all_worse_refused and verdict.best_learned == "cql"
    assert verdict.best_learned_pass_share == pytest.approx(0.9)
