"""Gate study arithmetic: how often the pre-registered gate refuses or passes each candidate.

"Refused" means the gate did not pass (status "fail" or "inconclusive"): no recommendation is
released either way. Proportions carry Wilson 95% intervals over the replicates. For each
candidate the share of replicates in which each check failed (or was inconclusive) says WHY it
was refused; the margin checks alone ("margin (<estimator>)") show what the statistical evidence
would have decided without the overlap and support checks.

Targets: every candidate truly worse than the clinician refused in >= 95% of the data sets; the
best learned candidate (highest true value among the learned ones) reported with its pass share.

>>> reps = [{"candidates": {"p": {"gate": {"status": "fail", "failed": ["ESS floor"], "inconclusive": []}}}}]
>>> row = gate_rows(reps, {"p": (-0.1, 0.01)})[0]
>>> row.refused, row.check_rates["ESS floor"], row.passed_without_overlap
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from clinical_mborl.core.models import StrictModel
from clinical_mborl.simulators.sepsis.ground_truth import wilson_interval
from clinical_mborl.studies.coverage import ok_replicates, worse_than_clinician

REFUSAL_TARGET = 0.95
#: the checks on overlap and support; what is left is the statistical evidence (agreement, margins, subgroups)
OVERLAP_CHECKS = frozenset({"ESS floor", "max weight share", "support"})


class GateRow(StrictModel):
    """One candidate's gate outcomes over the replicates."""

    candidate: str
    truth_difference: float
    truth_difference_mc_se: float
    worse_than_clinician: bool
    n_replicates: int
    passed: float
    failed: float
    inconclusive: float
    refused: float
    refused_ci: tuple[float, float]
    passed_ci: tuple[float, float]
    check_rates: dict[str, float] = Field(description="Check name -> share of replicates failing it "
                                                       "or inconclusive on it.")
    passed_without_overlap: float = Field(description="Share of replicates in which every check other than "
                                                      "the overlap and support ones passed: what the "
                                                      "statistical evidence alone would have released.")


class GateStudyVerdict(StrictModel):
    worse_candidates: list[str]
    all_worse_refused: bool
    min_refusal_worse: float | None
    best_learned: str | None
    best_learned_pass_share: float | None
    best_learned_pass_ci: tuple[float, float] | None


def gate_rows(results: Sequence[dict[str, Any]], differences: Mapping[str, tuple[float, float]]) -> list[GateRow]:
    """Rows for every gated candidate (all but the clinician); `differences`: candidate -> (truth, MC SE)."""
    reps = ok_replicates(results)
    worse = set(worse_than_clinician(differences))
    out = []
    for cand, (diff, se) in differences.items():
        gates = [r["candidates"][cand]["gate"] for r in reps if "gate" in r["candidates"].get(cand, {})]
        if not gates:
            continue
        n = len(gates)
        status = Counter(g["status"] for g in gates)
        checks: Counter[str] = Counter()
        for g in gates:
            checks.update(set(g["failed"]) | set(g["inconclusive"]))
        stats_only = sum(1 for g in gates if not (set(g["failed"]) | set(g["inconclusive"])) - OVERLAP_CHECKS)
        refused = n - status["pass"]
        _, rlo, rhi = wilson_interval(refused, n)
        _, plo, phi = wilson_interval(status["pass"], n)
        out.append(GateRow(
            candidate=cand, truth_difference=diff, truth_difference_mc_se=se, worse_than_clinician=cand in worse,
            n_replicates=n, passed=status["pass"] / n, failed=status["fail"] / n,
            inconclusive=status["inconclusive"] / n, refused=refused / n, refused_ci=(rlo, rhi),
            passed_ci=(plo, phi), check_rates={k: v / n for k, v in sorted(checks.items())},
            passed_without_overlap=stats_only / n,
        ))
    return out


def gate_verdict(rows: Sequence[GateRow], learned: Sequence[str]) -> GateStudyVerdict:
    """Were all worse candidates refused in >= 95%? How often does the best learned one pass?"""
    worse = [r for r in rows if r.worse_than_clinician]
    mine = [r for r in rows if r.candidate in learned]
    best = max(mine, key=lambda r: r.truth_difference) if mine else None
    return GateStudyVerdict(
        worse_candidates=[r.candidate for r in worse],
        all_worse_refused=all(r.refused >= REFUSAL_TARGET for r in worse),
        min_refusal_worse=min((r.refused for r in worse), default=None),
        best_learned=best.candidate if best else None,
        best_learned_pass_share=best.passed if best else None,
        best_learned_pass_ci=best.passed_ci if best else None,
    )
