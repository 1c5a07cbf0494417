"""Subgroup attributes are restricted to those whose features the cohort has; evaluate writes them."""

import json

from clinical_mborl.behavior import BehaviorConfig, fit_behavior
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.ope.policy_eval import SUBGROUPS_FILE, evaluate_policy
from clinical_mborl.ope.results import OPEConfig
from clinical_mborl.ope.subgroups import definition_for


def test_definition_keeps_only_attributes_with_features():
    assert definition_for(["age_years", "sex_female", "lactate_mmol_l", "map_mmhg"]).attributes == (
        "sex", "age_band", "severity")
    assert definition_for(["map_mmhg", "lactate_mmol_l"]).attributes == ("severity",)
    assert definition_for(["map_mmhg"]).attributes == ()


def test_evaluate_writes_subgroups_beside_ope_json(tmp_path):
    ts = make_toy_transitions(80, seed=1)  # has map and lactate, no sex/age: severity only
    pi_b = fit_behavior(ts, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=2))
    cfg = OPEConfig(n_resamples=50, estimators=("wis", "pdwis"))
    evaluate_policy(pi_b, ts, pi_b, config=cfg, out_dir=tmp_path)
    groups = json.loads((tmp_path / SUBGROUPS_FILE).read_text())
    assert groups and {g["attribute"] for g in groups} == {"severity"}
    assert {g["estimator"] for g in groups} == {"wis", "pdwis"}
    assert all(abs(g["difference"]) < 1e-9 for g in groups)  # the clinician against itself
