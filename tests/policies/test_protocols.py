"""Rule-based protocols: strict validation with clear messages, first-match-per-dimension rules."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.core.errors import InputError
from clinical_mborl.policies import ProtocolPolicy, parse_protocol

GOOD = """
name: map-lactate
default: {iv_fluid_ml: 0, norepinephrine_ug_kg_min: 0}
rules:
  - name: hypotension
    when: {map_mmhg: {lt: 65}}
    then: {norepinephrine_ug_kg_min: 2}
  - when: {lactate_mmol_l: {ge: 4}, map_mmhg: {lt: 90}}
    then: {iv_fluid_ml: 2, norepinephrine_ug_kg_min: 1}
"""
DISCRETE = make_toy_transitions(10, seed=0)
CONTINUOUS = make_toy_transitions(10, seed=0, continuous=True)


def _policy(text: str, continuous: bool = False) -> ProtocolPolicy:
    ts = CONTINUOUS if continuous else DISCRETE
    return ProtocolPolicy(parse_protocol(textwrap.dedent(text)), ts.feature_names, ts.manifest.action_space)


def _states(rows: list[tuple[float, float]]) -> np.ndarray:
    """(map, lactate) pairs with the other toy features at typical values."""
    return np.array([[m, lac, 95.0, 1.4] for m, lac in rows])


def test_first_matching_rule_decides_each_dimension_and_default_fills_the_rest() -> None:
    policy = _policy(GOOD)
    levels = policy.decide(_states([(60, 1), (60, 5), (80, 5), (95, 5)]))
    assert levels.tolist() == [[0, 2], [2, 2], [2, 1], [0, 0]]
    p = policy.action_probabilities(_states([(60, 5)]))
    assert p[0, 2 * 3 + 2] == 1.0 and p.sum() == 1.0


def test_softening_mixes_in_the_uniform_policy() -> None:
    policy = _policy(GOOD + "softening: 0.09\n")
    p = policy.action_probabilities(_states([(95, 1)]))
    assert p[0, 0] == pytest.approx(0.91 + 0.01) and p[0, 1:] == pytest.approx(np.full(8, 0.01))


def test_continuous_protocols_give_doses_and_a_point_mass() -> None:
    text = """
    name: pressor
    rules:
      - when: {map_mmhg: {lt: 65}}
        then: {norepinephrine_ug_kg_min: 0.1}
    """
    policy = _policy(text, continuous=True)
    doses = policy.sample_actions(_states([(60, 1), (80, 1)]), np.random.default_rng(0))
    assert doses.tolist() == [[0.0, 0.1], [0.0, 0.0]]
    assert policy.log_density(_states([(60, 1)]), np.array([[0.0, 0.1]]))[0] == np.inf
    assert policy.log_density(_states([(60, 1)]), np.array([[0.0, 0.2]]))[0] == -np.inf


@pytest.mark.parametrize("text, message", [
    ("name: x\nrules: [{when: {map_mmhg: {lt: 65}}, then: {iv_fluid_ml: 1}}]\ncolour: red\n",
     r"colour: Extra inputs are not permitted"),
    ("name: x\nrules: [{then: {iv_fluid_ml: 1}}]\n", r"rules\.0\.when: Field required"),
    ("name: x\nrules: [{when: {map_mmhg: {}}, then: {iv_fluid_ml: 1}}]\n",
     r"rules\.0\.when\.map_mmhg: Value error, a condition needs at least one of lt, le, gt, ge"),
    ("name: x\nrules: [{when: {map_mmhg: {below: 65}}, then: {iv_fluid_ml: 1}}]\n",
     r"rules\.0\.when\.map_mmhg\.below: Extra inputs"),
    ("name: x\nrules: [{when: {map_mmhg: {lt: low}}, then: {iv_fluid_ml: 1}}]\n",
     r"rules\.0\.when\.map_mmhg\.lt: Input should be a valid number"),
    ("name: x\nname: y\nrules: []\n", r"duplicate key 'name'"),
    ("- a\n- b\n", r"expected a mapping"),
    ("name: x\nsoftening: 2\n", r"softening: Input should be less than or equal to 1"),
    ("rules: []\n", r"name: Field required"),
])
def test_malformed_protocols_are_input_errors_naming_the_place(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse_protocol(text, source="p.yaml")
    assert str(err.value).startswith("protocol p.yaml:")


def test_protocols_are_checked_against_the_cohort_with_every_problem_listed() -> None:
    text = """
    name: bad
    default: {heparin_units: 1}
    rules:
      - when: {map_mmhg: {lt: 65}, spo2: {lt: 90}}
        then: {iv_fluid_ml: 3, norepinephrine_ug_kg_min: 1.5}
    """
    with pytest.raises(InputError) as err:
        _policy(text)
    msg = str(err.value)
    assert "4 problem(s)" in msg
    assert "unknown dose dimension 'heparin_units'" in msg
    assert "rules.0.when: unknown feature 'spo2'" in msg
    assert "rules.0.then.iv_fluid_ml: dose level must be an integer in 0..2, got 3.0" in msg
    assert "norepinephrine_ug_kg_min: dose level must be an integer in 0..2, got 1.5" in msg


def test_continuous_doses_must_lie_in_the_dose_range() -> None:
    text = "name: x\nrules: [{when: {map_mmhg: {lt: 65}}, then: {iv_fluid_ml: 99999}}]\n"
    with pytest.raises(InputError, match=r"iv_fluid_ml: dose must be in \[0, 1500.0\] mL"):
        _policy(text, continuous=True)


def test_states_must_have_the_cohort_columns() -> None:
    with pytest.raises(InputError, match=r"states must be \[n, 4\]"):
        _policy(GOOD).action_probabilities(np.zeros((2, 3)))
