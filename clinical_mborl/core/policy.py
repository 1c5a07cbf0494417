"""The Policy protocol every stage above `cohort` speaks.

A policy maps a batch of states to actions. States are given **in clinical units**, as the
columns of a cohort's `transitions.parquet` in the order of `feature_names` (learned policies
carry their own normaliser, fitted on the train split). Discrete policies return a probability
for every joint dose level; continuous policies return doses in clinical units and a log-density.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Anything that can recommend doses.

    Attributes:
        name: short label used in reports and score tables.
        action_kind: "discrete" (joint dose-level index) or "continuous" (dose per dimension).
        feature_names: state columns expected, in order.
    """

    name: str
    action_kind: Literal["discrete", "continuous"]
    feature_names: tuple[str, ...]

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        """Discrete: [n, n_actions] rows summing to one. Continuous policies raise TypeError."""
        ...

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Discrete: int [n] joint indices. Continuous: float [n, n_dims] doses in clinical units."""
        ...


@runtime_checkable
class ContinuousPolicy(Policy, Protocol):
    def log_density(self, states: np.ndarray, doses: np.ndarray) -> np.ndarray:
        """log pi(dose | state), [n]; doses in clinical units."""
        ...


def greedy_actions(policy: Policy, states: np.ndarray) -> np.ndarray:
    """The most probable joint dose level for each state (discrete policies)."""
    return np.asarray(policy.action_probabilities(states)).argmax(axis=1)
