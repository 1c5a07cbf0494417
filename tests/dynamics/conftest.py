"""Tiny cohorts and a tiny fitted ensemble shared by the dynamics tests."""

from __future__ import annotations

import pytest

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics

TINY = DynamicsConfig(n_members=4, n_elites=2, hidden_sizes=(16, 16), max_epochs=4, batch_size=64,
                      learning_rate=3e-3, seed=11)


@pytest.fixture(scope="session")
def toy() -> TransitionSet:
    return make_toy_transitions(n_patients=80, seed=5)


@pytest.fixture(scope="session")
def toy_continuous() -> TransitionSet:
    return make_toy_transitions(n_patients=60, seed=6, continuous=True)


@pytest.fixture(scope="session")
def ensemble(toy: TransitionSet) -> DynamicsEnsemble:
    return fit_dynamics(toy, TINY, quiet=True)
