"""Reference policies users expect beside learned ones: `random` and `no-treatment`.

Deterministic continuous policies (no-treatment, protocols) are point masses: `log_density` is
+inf at the recommended dose and -inf elsewhere, so an estimator must smooth them (or use dose
levels) before importance weighting.

>>> from clinical_mborl.cohort.toy import make_toy_transitions
>>> ts = make_toy_transitions(10, seed=0)
>>> float(NoTreatmentPolicy(ts.feature_names, ts.manifest.action_space).action_probabilities(np.zeros((1, 4)))[0, 0])
1.0
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from clinical_mborl.cohort import ActionSpaceInfo
from clinical_mborl.core.errors import InputError


class _Baseline:
    """Shared plumbing: names, shape checks, dose boxes."""

    name = "baseline"

    def __init__(self, feature_names: tuple[str, ...], action_space: ActionSpaceInfo) -> None:
        self.feature_names = tuple(feature_names)
        self.action_space = action_space
        self.action_kind: Literal["discrete", "continuous"] = action_space.kind
        self.dose_max = np.array([d.dose_max for d in action_space.dimensions], dtype=np.float64)

    def _n(self, states: np.ndarray) -> int:
        x = np.asarray(states)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise InputError(f"policy '{self.name}': states must be [n, {len(self.feature_names)}] in the "
                             f"order {list(self.feature_names)}; got shape {x.shape}.")
        return int(x.shape[0])

    def _require(self, kind: str) -> None:
        if self.action_kind != kind:
            raise TypeError(f"policy '{self.name}' has {self.action_kind} actions; this needs {kind} ones")


def point_mass_log_density(recommended: np.ndarray, doses: np.ndarray, atol: float = 1e-9) -> np.ndarray:
    """+inf where `doses` equal the recommendation (every dimension), -inf elsewhere. [n]."""
    same = np.isclose(np.asarray(doses, dtype=np.float64), recommended, rtol=0.0, atol=atol).all(axis=1)
    return np.where(same, np.inf, -np.inf)


class RandomPolicy(_Baseline):
    """Uniform over joint dose levels, or uniform doses in [0, dose_max] per dimension."""

    name = "random"

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        self._require("discrete")
        n_actions = self.action_space.n_actions
        return np.full((self._n(states), n_actions), 1.0 / n_actions)

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = self._n(states)
        if self.action_kind == "discrete":
            return rng.integers(0, self.action_space.n_actions, size=n).astype(np.int64)
        return rng.random((n, self.dose_max.shape[0])) * self.dose_max

    def log_density(self, states: np.ndarray, doses: np.ndarray) -> np.ndarray:
        """-sum_j log dose_max_j inside the dose box, -inf outside."""
        self._require("continuous")
        d = np.asarray(doses, dtype=np.float64).reshape(self._n(states), -1)
        inside = ((d >= 0) & (d <= self.dose_max)).all(axis=1)
        return np.where(inside, -np.log(self.dose_max).sum(), -np.inf)


class NoTreatmentPolicy(_Baseline):
    """Level 0 (no dose) in every dimension, always."""

    name = "no-treatment"

    def action_probabilities(self, states: np.ndarray) -> np.ndarray:
        self._require("discrete")
        p = np.zeros((self._n(states), self.action_space.n_actions))
        p[:, 0] = 1.0  # joint index of all-zero levels (row-major) is 0
        return p

    def sample_actions(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = self._n(states)
        if self.action_kind == "discrete":
            return np.zeros(n, dtype=np.int64)
        return np.zeros((n, self.dose_max.shape[0]))

    def mean_doses(self, states: np.ndarray) -> np.ndarray:
        self._require("continuous")
        return np.zeros((self._n(states), self.dose_max.shape[0]))

    def log_density(self, states: np.ndarray, doses: np.ndarray) -> np.ndarray:
        """A point mass at zero dose (see the module docstring)."""
        return point_mass_log_density(self.mean_doses(states), doses)
