"""Fixtures for the policy tests: tiny toy cohorts with a clinician estimate and a dynamics
ensemble fitted in well under a second each (the real `behavior` and `dynamics` stages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics

# support threshold 0.1: the toy clinician rules out about a third of the 9 joint levels
FAST = {"batch_size": 32, "hidden": (16,), "quiet": True, "constraint": {"support_threshold": 0.1}}
FAST_MODEL = {**FAST, "rollout_batch": 32, "rollout_every": 10, "horizon": 2}


@dataclass(frozen=True)
class Cohort:
    """A toy cohort with its fitted clinician and ensemble."""

    transitions: TransitionSet
    behavior: ClinicianPolicy
    dynamics: DynamicsEnsemble

    @property
    def kind(self) -> str:
        return self.transitions.manifest.action_space.kind

    def raw_states(self, n: int = 25) -> Any:
        return self.transitions.frame.select(self.transitions.feature_names).to_numpy()[:n]


def _cohort(continuous: bool) -> Cohort:
    ts = make_toy_transitions(n_patients=40, seed=0, continuous=continuous)
    behavior = fit_behavior(ts, BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=3, seed=0))
    dynamics = fit_dynamics(ts, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(16,), max_epochs=3),
                            quiet=True)
    return Cohort(ts, behavior, dynamics)


@pytest.fixture(scope="session")
def discrete_cohort() -> Cohort:
    return _cohort(continuous=False)


@pytest.fixture(scope="session")
def continuous_cohort() -> Cohort:
    return _cohort(continuous=True)


@pytest.fixture(params=["discrete", "continuous"])
def cohort(request: pytest.FixtureRequest, discrete_cohort: Cohort, continuous_cohort: Cohort) -> Cohort:
    return discrete_cohort if request.param == "discrete" else continuous_cohort
