import numpy as np
import pytest

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.report.collect import (
    characteristics_from_transitions,
    dose_input,
    paired_from_ope,
    review_cases,
    trajectory_input,
)
from clinical_mborl.report.inputs import OPEEstimate

from .factory import ope_report


def test_dose_input_counts_levels_and_agreement():
    space = make_toy_transitions(10, seed=0).manifest.action_space  # 3 x 3 levels, row-major
    clin = space.joint_index(np.array([[0, 0], [1, 2], [2, 2], [0, 1]]))
    pol = space.joint_index(np.array([[0, 0], [2, 2], [0, 2], [0, 1]]))
    d = dose_input(space, clin, pol)
    assert d.n_steps == 4 and d.n_exact_agreement == 2 and d.n_within_one_level == 3
    assert d.dimensions[0].clinician_counts == [2, 1, 1] and d.dimensions[0].policy_counts == [3, 0, 1]
    assert d.dimensions[1].policy_counts == [1, 1, 2]
    with pytest.raises(InputError):
        dose_input(space, clin, pol[:2])


def test_review_cases_are_distinct_and_labelled():
    picked = review_cases(np.array([5.0, 1.0, 4.0, 0.0]), np.array([9.0, 8.0, 0.0, 7.0]), k=2)
    assert picked == [(0, "most aggressive"), (2, "most aggressive"), (1, "most optimistic"), (3, "most optimistic")]


def test_trajectory_input_carries_no_identifier_and_uses_clinical_units():
    t = trajectory_input(np.array([[70.0, 2.0], [65.0, 3.0]]), ["map_mmhg", "lactate"], np.array([[500.0], [0.0]]),
                         np.array([[1000.0], [500.0]]), ["iv_fluid_ml"], 4.0, "most aggressive", shown=["map_mmhg"])
    assert [s.hour for s in t.steps] == [0.0, 4.0]
    assert t.steps[1].state == {"map_mmhg": 65.0}
    assert t.steps[0].recommended_dose == {"iv_fluid_ml": 1000.0}
    assert "stay" not in t.model_dump_json()


def test_characteristics_use_the_first_step_of_each_stay():
    ts = make_toy_transitions(40, seed=1)
    rows = characteristics_from_transitions(ts)
    first = ts.frame.filter(ts.frame["step"] == 0)
    train = first.filter(first["split"] == "train")
    row = next(r for r in rows if r.split == "train" and r.feature == "map_mmhg")
    assert row.n_stays == train.height
    assert row.mean == pytest.approx(float(train["map_mmhg"].mean()))
    assert row.q1 <= row.median <= row.q3


def test_paired_from_ope_requires_lower_bounds():
    ok = OPEEstimate(estimator="wdr", target="paired_difference", value=0.1, ci_low=0.0, ci_high=0.2,
                     lower_bound=0.02, n_patients=100)
    assert paired_from_ope([ok])[0].lower_bound == 0.02
    with pytest.raises(InputError):
        paired_from_ope([ok.model_copy(update={"lower_bound": None})])


def test_ope_report_converts_to_inputs_and_evidence():
    from clinical_mborl.report.collect import evidence_from_ope, ope_inputs

    rep = ope_report()
    rows = ope_inputs(rep)
    assert [(e.estimator, e.target) for e in rows] == [("clinician", "clinician"), ("wdr", "policy"), ("fqe", "policy"),
                                                       ("wdr", "paired_difference"), ("fqe", "paired_difference")]
    assert rows[-1].value is None and rows[0].split == "test"
    ev = evidence_from_ope(rep)
    assert [p.estimator for p in ev.paired] == ["wdr"]  # undefined differences are left out
    assert ev.overlap.ess == 80.0 and ev.overlap.max_weight_share == 0.04
    assert ev.support is not None and ev.support.share_in_support == 0.98 and ev.support.threshold == 0.01
    assert ev.level == 0.95 and ev.split == "test" and ev.explanation is None


def test_sensitivity_bounds_are_shown_and_reach_the_gate_only_as_confounding_evidence():
    from clinical_mborl.ope import results as r
    from clinical_mborl.report.collect import evidence_from_ope, ope_inputs

    rep = ope_report()
    fqe, diff = rep.estimate("fqe"), rep.difference("wdr")
    bound = r.SensitivityBound(
        lam=1.5, lower=fqe.model_copy(update={"estimator": "fqe_lower", "value": 0.4}),
        upper=fqe.model_copy(update={"estimator": "fqe_upper", "value": 0.8}),
        lower_difference=diff.model_copy(update={"estimator": "fqe_lower", "value": -0.1, "lower_bound": -0.2}),
        upper_difference=diff.model_copy(update={"estimator": "fqe_upper", "value": 0.3}))
    with_bounds = rep.model_copy(update={"sensitivity": [bound]})
    rows = ope_inputs(with_bounds)
    extra = rows[len(ope_inputs(rep)):]
    assert [(e.estimator, e.target, e.value) for e in extra] == [
        ("fqe, lower bound at Lambda 1.5", "policy", 0.4), ("fqe, upper bound at Lambda 1.5", "policy", 0.8)]
    assert extra[0].diagnostics["paired_difference_lower_bound"] == -0.2
    assert evidence_from_ope(with_bounds).paired == evidence_from_ope(rep).paired
    assert [(c.lam, c.lower_bound) for c in evidence_from_ope(with_bounds).confounding] == [(1.5, -0.2)]
    assert evidence_from_ope(rep).confounding == []
    paired = [e for e in rows if e.target == "paired_difference"]
    assert paired == [e for e in ope_inputs(rep) if e.target == "paired_difference"]


def test_projected_and_widened_intervals_are_named_in_the_report_diagnostics():
    from clinical_mborl.report.collect import ope_inputs

    rep = ope_report()
    wdr, diff = rep.estimate("wdr"), rep.difference("wdr")
    flagged = rep.model_copy(update={
        "estimates": [wdr.model_copy(update={"value_projected": True, "n_projected_resamples": 1938}),
                      rep.estimate("fqe").model_copy(update={"n_projected_resamples": 66, "interval_extended": True})],
        "differences": [diff.model_copy(update={"n_projected_resamples": 1938}), rep.difference("fqe")]})
    rows = {(e.estimator, e.target): e.diagnostics for e in ope_inputs(flagged)}
    assert rows[("wdr", "policy")]["projected_onto_return_range"] == "estimate and resamples"
    assert rows[("wdr", "policy")]["n_projected_resamples"] == 1938
    assert rows[("fqe", "policy")]["projected_onto_return_range"] == "resamples"
    assert rows[("fqe", "policy")]["interval_extended"] == "widened to contain the estimate"
    assert rows[("wdr", "paired_difference")]["n_projected_resamples"] == 1938
    # nothing is said where nothing happened
    plain = {(e.estimator, e.target): e.diagnostics for e in ope_inputs(rep)}
    assert not any(k in d for d in plain.values() for k in ("projected_onto_return_range", "interval_extended"))
