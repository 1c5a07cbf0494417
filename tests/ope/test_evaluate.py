"""`evaluate_arrays` and the `ope.json` contract (CONTRACTS.md §5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope import OPE_FILE, OPEConfig, OPEData, OPEReport, evaluate_arrays

from .tabular import ope_data, simulate, tabular_policies, true_value


@pytest.fixture(scope="module")
def report_and_truth():
    mdp, pi_b, pi_e = tabular_policies(1.5)
    ep = simulate(mdp, pi_b, 3000, np.random.default_rng(0))
    data = ope_data(mdp, ep, pi_b, pi_e, patient=np.arange(3000) // 2)  # two stays per patient
    config = OPEConfig(n_resamples=500, soften_epsilon=0.0, clip=50.0)
    return evaluate_arrays(data, config, policy="tabular"), true_value(mdp, pi_e), true_value(mdp, pi_b)


def test_report_has_one_entry_per_estimator_and_the_clinician(report_and_truth):
    rep, truth, clinician_truth = report_and_truth
    assert [e.estimator for e in rep.estimates] == ["wis", "pdwis", "dr", "wdr", "fqe"]
    assert rep.skipped == {"model_based": "no dynamics-model rollout returns in the data"}
    assert [d.estimator for d in rep.differences] == ["wis", "pdwis", "dr", "wdr", "fqe"]
    assert rep.n_patients == 1500 and rep.n_episodes == 3000
    assert rep.clinician.ess == 3000 and rep.clinician.value is not None
    assert abs(rep.clinician.value - clinician_truth) < 0.15
    for e in rep.estimates:
        assert e.ci_low is not None and e.ci_high is not None and e.value is not None
        assert e.ci_low <= e.ci_high and e.n_resamples == 500 and e.level == 0.95 and e.method == "bca"
        assert abs(e.value - truth) < 0.25
        assert (e.ess is None) == (e.estimator == "fqe")
    wis = rep.estimate("wis")
    assert {"ess_low", "ess_high", "max_weight_share", "clipped_share", "support_share_outside",
            "soften_epsilon", "clip"} <= set(wis.diagnostics)
    d = rep.difference("wdr")
    assert d.value == pytest.approx(rep.estimate("wdr").value - rep.clinician.value, abs=1e-9)
    assert d.lower_bound is not None and d.ci_low is not None and d.lower_bound >= d.ci_low
    assert rep.high_confidence.lower_bound <= truth


def test_ope_json_round_trips_with_the_contract_fields(report_and_truth, tmp_path):
    rep, _, _ = report_and_truth
    path = rep.write(tmp_path)
    assert path.name == OPE_FILE
    raw = json.loads(path.read_text())
    for entry in raw["estimates"] + [raw["clinician"]]:
        assert {"estimator", "value", "ci_low", "ci_high", "level", "method", "n_patients", "ess",
                "diagnostics", "lower_bound"} <= set(entry)
    assert OPEReport.model_validate_json(path.read_text()) == rep
    with pytest.raises(InputError):
        rep.estimate("nope")


def test_undefined_estimates_become_null_not_nan(tmp_path):
    data = OPEData.create(np.ones((4, 1)), np.ones((4, 1), bool), np.arange(4), pb=np.ones((4, 1)),
                          pe=np.zeros((4, 1)), gamma=1.0, return_bounds=(0.0, 2.0))
    rep = evaluate_arrays(data, OPEConfig(n_resamples=50, soften_epsilon=0.0, hcope_selection_fraction=0.5))
    assert rep.estimate("wis").value is None
    assert rep.estimate("wis").diagnostics["n_undefined_resamples"] == 50
    assert "NaN" not in rep.write(tmp_path).read_text()


def test_softening_must_match_the_config():
    data = OPEData.create(np.ones((4, 1)), np.ones((4, 1), bool), np.arange(4), pb=np.ones((4, 1)),
                          pe=np.ones((4, 1)), gamma=1.0, soften_epsilon=0.0)
    with pytest.raises(InputError, match="softened"):
        evaluate_arrays(data, OPEConfig(soften_epsilon=0.01))


def test_sensitivity_bounds_are_evaluated_like_fqe_and_skipped_without_their_q_values():
    mdp, pi_b, pi_e = tabular_policies(1.5)
    ep = simulate(mdp, pi_b, 400, np.random.default_rng(0))
    data = ope_data(mdp, ep, pi_b, pi_e, patient=np.arange(400))
    config = OPEConfig(n_resamples=200, soften_epsilon=0.0, estimators=("fqe",), sensitivity_lambdas=(2.0,))
    plain = evaluate_arrays(data, config)
    assert plain.sensitivity == [] and "sensitivity" in plain.skipped
    # bounds that shift every Q-value by -0.1 / +0.2 (two members each) shift FQE by the same
    q, v = data.q_sa[None].repeat(2, 0), data.v_s[None].repeat(2, 0)
    shifted = OPEData.create(data.rewards, data.mask, data.patient, data.pb, data.pe, data.gamma,
                             q_sa=data.q_sa, v_s=data.v_s, return_bounds=data.return_bounds,
                             sensitivity={(2.0, "lower"): (q - 0.1, v - 0.1), (2.0, "upper"): (q + 0.2, v + 0.2)})
    rep = evaluate_arrays(shifted, config)
    fqe, (bound,) = rep.estimate("fqe"), rep.sensitivity
    assert bound.lam == 2.0 and "sensitivity" not in rep.skipped
    assert bound.lower.value == pytest.approx(fqe.value - 0.1) and bound.upper.value == pytest.approx(fqe.value + 0.2)
    assert bound.lower_difference.value == pytest.approx(rep.difference("fqe").value - 0.1)
    assert bound.lower.ci_low < bound.lower.value < bound.upper.value < bound.upper.ci_high
    assert json.loads(rep.model_dump_json())["sensitivity"][0]["upper"]["estimator"] == "fqe_upper"
