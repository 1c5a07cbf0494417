"""Each gate check can fail the gate on its own; disagreement between estimators is inconclusive."""

import numpy as np
import pytest

from clinical_mborl.report.gate import (
    ExplanationEvidence,
    GateConfig,
    GateEvidence,
    OverlapEvidence,
    PairedEstimate,
    SubgroupEvidence,
    SupportEvidence,
    evaluate_gate,
    kish_ess,
    overlap_evidence,
    support_evidence,
)

CFG = GateConfig(primary_estimators=("wdr", "fqe"), ess_floor=50, max_weight_share=0.2, support_threshold=0.05,
                 min_support_share=0.9, margin=0.0, min_subgroup_size=30)


def _paired(wdr=(0.10, 0.02, 0.20, 0.03), fqe=(0.12, 0.05, 0.19, 0.06)):
    return [PairedEstimate(estimator="wdr", difference=wdr[0], ci_low=wdr[1], ci_high=wdr[2], lower_bound=wdr[3]),
            PairedEstimate(estimator="fqe", difference=fqe[0], ci_low=fqe[1], ci_high=fqe[2], lower_bound=fqe[3])]


def _subgroups(lb=0.02, n=50):
    return [SubgroupEvidence(attribute=a, level=lvl, n_patients=n, difference=0.05, lower_bound=lb)
            for a in ("sex", "age_band", "severity") for lvl in ("x", "y")]


def _evidence(**kw):
    base = dict(split="test", level=0.95, paired=_paired(), overlap=OverlapEvidence(ess=120, max_weight_share=0.05),
                support=SupportEvidence(threshold=0.05, share_in_support=0.97), subgroups=_subgroups(),
                explanation=ExplanationEvidence(completeness_passed=True, sanity_passed=True, sanity_spearman=0.1))
    base.update(kw)
    return GateEvidence(**base)


def test_all_checks_pass():
    d = evaluate_gate(_evidence(), CFG)
    assert d.passed and d.status == "pass" and d.reasons == []
    names = {c.name for c in d.checks}
    assert {"held-out split", "ESS floor", "max weight share", "support", "estimator agreement",
            "margin (wdr)", "margin (fqe)", "explanation sanity"} <= names
    assert sum(c.name.startswith("subgroup ") for c in d.checks) == 6


FAILURES = {
    "held-out split": dict(split="train"),
    "confidence level": dict(level=0.8),
    "ESS floor": dict(overlap=OverlapEvidence(ess=49.9, max_weight_share=0.05)),
    "max weight share": dict(overlap=OverlapEvidence(ess=120, max_weight_share=0.25)),
    "support": dict(support=SupportEvidence(threshold=0.05, share_in_support=0.89)),
    "support ": dict(support=None),
    "margin (wdr)": dict(paired=_paired(wdr=(0.10, 0.0, 0.20, -0.001))),
    "subgroup sex=x": dict(subgroups=[s if (s.attribute, s.level) != ("sex", "x") else
                                      s.model_copy(update={"lower_bound": -0.01}) for s in _subgroups()]),
    "subgroups (severity)": dict(subgroups=[s for s in _subgroups() if s.attribute != "severity"]),
    "explanation sanity": dict(explanation=ExplanationEvidence(completeness_passed=True, sanity_passed=False,
                                                               sanity_spearman=0.9)),
}


@pytest.mark.parametrize("check", sorted(FAILURES))
def test_each_check_fails_the_gate_alone(check):
    d = evaluate_gate(_evidence(**FAILURES[check]), CFG)
    assert not d.passed and d.status == "fail"
    failed = [c.name for c in d.checks if c.status == "fail"]
    assert failed == [check.strip()]
    assert any(r.startswith(check.strip()) for r in d.reasons)


def test_support_evidence_at_a_looser_threshold_fails():
    d = evaluate_gate(_evidence(support=SupportEvidence(threshold=0.01, share_in_support=0.99)), CFG)
    assert [c.name for c in d.checks if c.status == "fail"] == ["support"]


def test_missing_explanation_or_estimator_fails():
    assert evaluate_gate(_evidence(explanation=None), CFG).status == "fail"
    d = evaluate_gate(_evidence(paired=_paired()[:1]), CFG)
    assert d.status == "fail" and "primary estimators present" in [c.name for c in d.checks]


def test_non_overlapping_intervals_are_inconclusive():
    d = evaluate_gate(_evidence(paired=_paired(wdr=(0.05, 0.02, 0.08, 0.03), fqe=(0.3, 0.2, 0.4, 0.22))), CFG)
    assert d.status == "inconclusive" and not d.passed
    assert [c.status for c in d.checks if c.name == "estimator agreement"] == ["inconclusive"]


def test_opposite_signs_are_inconclusive():
    d = evaluate_gate(_evidence(paired=_paired(wdr=(0.01, -0.1, 0.12, -0.08), fqe=(-0.01, -0.12, 0.1, -0.1))),
                      CFG.model_copy(update={"margin": -0.5}))
    assert d.status == "inconclusive"


def test_fail_dominates_inconclusive():
    d = evaluate_gate(_evidence(paired=_paired(wdr=(0.05, 0.02, 0.08, 0.03), fqe=(0.3, 0.2, 0.4, 0.22)),
                                split="val"), CFG)
    assert d.status == "fail"


def test_small_subgroups_not_evaluated_or_failed_by_policy():
    ev = _evidence(subgroups=_subgroups(lb=-1.0, n=12))
    d = evaluate_gate(ev, CFG)
    assert d.status == "pass"
    assert {c.status for c in d.checks if c.name.startswith("subgroup ")} == {"not_evaluated"}
    assert all("12" not in c.detail for c in d.checks)  # sizes are never echoed
    assert evaluate_gate(ev, CFG.model_copy(update={"small_subgroup_policy": "fail"})).status == "fail"


def test_evidence_hash_changes_with_evidence():
    a, b = evaluate_gate(_evidence(), CFG), evaluate_gate(_evidence(level=0.96), CFG)
    assert a.evidence_sha256 != b.evidence_sha256


def test_helpers():
    w = np.array([1.0, 1.0, 2.0])
    assert kish_ess(w) == pytest.approx(16 / 6)
    o = overlap_evidence(w)
    assert o.max_weight_share == pytest.approx(0.5)
    s = support_evidence(np.array([0.01, 0.05, 0.5, 0.9]), 0.05)
    assert s.share_in_support == pytest.approx(0.75)


def test_subgroup_checks_use_only_the_primary_estimators():
    from clinical_mborl.report.gate import GateConfig, SubgroupEvidence, evaluate_gate

    from .factory import evidence as make_evidence
    from .factory import ope_entries, toy_explanation

    base = make_evidence(ope_entries(200), [], toy_explanation())
    groups = [SubgroupEvidence(attribute="sex", level=lvl, n_patients=100, estimator=est, difference=0.1,
                               lower_bound=lb)
              for lvl in ("female", "male") for est, lb in (("wdr", 0.05), ("dr", -9.0))]
    cfg = GateConfig(primary_estimators=("wdr",), subgroup_attributes=("sex",), require_explanation_sanity=False)
    checks = [c for c in evaluate_gate(base.model_copy(update={"subgroups": groups}), cfg).checks
              if c.name.startswith("subgroup")]
    assert [c.name for c in checks] == ["subgroup sex=female (wdr)", "subgroup sex=male (wdr)"]
    assert all(c.status == "pass" for c in checks)


def test_the_confounding_check_runs_only_when_pre_registered():
    from clinical_mborl.report.gate import ConfoundingEvidence

    ev = _evidence(confounding=[ConfoundingEvidence(lam=1.25, lower_bound=-0.02),
                                ConfoundingEvidence(lam=1.1, lower_bound=0.01)])
    assert evaluate_gate(ev, CFG).passed  # not pre-registered: the (failing) bound at 1.25 is not looked at
    name = "margin under confounding (Lambda 1.1)"
    ok = evaluate_gate(ev, CFG.model_copy(update={"confounding_lambda": 1.1}))
    assert ok.passed and [c.observed for c in ok.checks if c.name == name] == [0.01]
    strict = evaluate_gate(ev, CFG.model_copy(update={"confounding_lambda": 1.25}))
    assert [c.name for c in strict.checks if c.status == "fail"] == ["margin under confounding (Lambda 1.25)"]
    missing = evaluate_gate(_evidence(), CFG.model_copy(update={"confounding_lambda": 1.1}))
    assert not missing.passed and "--sensitivity 1.1" in missing.reasons[0]
    with pytest.raises(ValueError):
        GateConfig(confounding_lambda=1.0)
