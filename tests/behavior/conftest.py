"""Shared tiny fitted behaviour policies (module-scoped: fitting takes a second)."""

from __future__ import annotations

import pytest

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions

TINY = BehaviorConfig(n_folds=3, hidden_sizes=(16,), max_epochs=6, batch_size=64, seed=3)


@pytest.fixture(scope="session")
def toy_discrete() -> TransitionSet:
    return make_toy_transitions(n_patients=60, seed=1)


@pytest.fixture(scope="session")
def toy_continuous() -> TransitionSet:
    return make_toy_transitions(n_patients=60, seed=2, continuous=True)


@pytest.fixture(scope="session")
def discrete_policy(toy_discrete: TransitionSet) -> ClinicianPolicy:
    return fit_behavior(toy_discrete, TINY)


@pytest.fixture(scope="session")
def continuous_policy(toy_continuous: TransitionSet) -> ClinicianPolicy:
    return fit_behavior(toy_continuous, TINY)
