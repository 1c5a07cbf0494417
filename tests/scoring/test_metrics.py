"""Clinician agreement and MOReL HALT rates, checked against direct computations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.policies import NoTreatmentPolicy, RandomPolicy
from clinical_mborl.scoring.metrics import clinician_agreement, halt_rate, halt_threshold

from .conftest import Toy


class _FakeMorel:
    """A no-treatment policy dressed as a MOReL artifact with a chosen HALT threshold."""

    algo = "morel"

    def __init__(self, toy: Toy, threshold: Any) -> None:
        self._inner = NoTreatmentPolicy(toy.transitions.feature_names, toy.transitions.manifest.action_space)
        self.name, self.action_kind, self.feature_names = "fake", "discrete", self._inner.feature_names
        self.config = {} if threshold is None else {"halt_threshold": threshold}

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        return self._inner.action_probabilities(states)

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._inner.sample_actions(states, rng)


def test_agreement_matches_a_direct_count(toy: Toy) -> None:
    ts = toy.transitions
    test = ts.frame.filter(ts.frame["split"] == "test")
    states, logged = test.select(ts.feature_names).to_numpy(), test["action"].to_numpy()
    p = toy.behavior.action_probabilities(states)
    got = clinician_agreement(toy.behavior, ts, ("test",))
    assert got.agreement == pytest.approx(float((p.argmax(1) == logged).mean()))
    assert got.mean_probability_logged == pytest.approx(float(p[np.arange(len(logged)), logged].mean()))
    uniform = clinician_agreement(RandomPolicy(ts.feature_names, ts.manifest.action_space), ts, ("test",))
    assert uniform.mean_probability_logged == pytest.approx(1.0 / ts.n_actions)


def test_agreement_is_blank_with_a_note_for_continuous_doses() -> None:
    ts = make_toy_transitions(20, seed=0, continuous=True)
    got = clinician_agreement(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space), ts, ("test",))
    assert got.agreement is None and got.mean_probability_logged is None and "continuous" in (got.note or "")


@pytest.mark.parametrize("threshold, expected", [(0.0, 1.0), (float("inf"), 0.0)])
def test_halt_rate_follows_the_stored_threshold(toy: Toy, threshold: float, expected: float) -> None:
    got = halt_rate(_FakeMorel(toy, threshold), toy.transitions, toy.dynamics, ("test",), 2, 0)  # type: ignore[arg-type]
    assert got.rate == expected and got.note is None


def test_halt_rate_of_a_trained_morel_artifact_is_a_share_and_seeded(toy: Toy) -> None:
    from clinical_mborl.policies import LearnedPolicy

    policy = LearnedPolicy.load(toy.morel, behavior=toy.behavior)
    assert halt_threshold(policy) == policy.config["halt_threshold"] > 0
    a = halt_rate(policy, toy.transitions, toy.dynamics, ("test",), 2, 0)
    b = halt_rate(policy, toy.transitions, toy.dynamics, ("test",), 2, 0)
    assert a.rate is not None and 0.0 <= a.rate <= 1.0 and a == b


def test_halt_rate_is_blank_with_a_reason_otherwise(toy: Toy) -> None:
    ts = toy.transitions
    cases = [(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space), toy.dynamics, "not a MOReL"),
             (_FakeMorel(toy, None), toy.dynamics, "no halt_threshold"),
             (_FakeMorel(toy, 0.0), None, "no dynamics")]
    for policy, dynamics, why in cases:
        got = halt_rate(policy, ts, dynamics, ("test",), 2, 0)  # type: ignore[arg-type]
        assert got.rate is None and why in (got.note or "")
