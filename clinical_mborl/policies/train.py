"""One entry point for every learner: `train_policy(algo, transitions, behavior, dynamics, config)`.

>>> sorted(ALGORITHMS)
['bc', 'combo', 'cql', 'mopo', 'morel']
>>> default_config("combo", beta=5.0).beta
5.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.core.errors import InputError
from clinical_mborl.policies.bc import BcConfig, train_bc
from clinical_mborl.policies.combo import ComboConfig, train_combo
from clinical_mborl.policies.config import LearnerConfig
from clinical_mborl.policies.cql import CqlConfig, train_cql
from clinical_mborl.policies.learned import LearnedPolicy
from clinical_mborl.policies.mopo import MopoConfig, train_mopo
from clinical_mborl.policies.morel import MorelConfig, train_morel
from clinical_mborl.policies.rollouts import DynamicsModel

Trainer = Callable[[TransitionSet, Any, Any, Any], LearnedPolicy]

ALGORITHMS: dict[str, tuple[type[LearnerConfig], Trainer]] = {
    "bc": (BcConfig, train_bc),
    "cql": (CqlConfig, train_cql),
    "mopo": (MopoConfig, train_mopo),
    "morel": (MorelConfig, train_morel),
    "combo": (ComboConfig, train_combo),
}
MODEL_BASED = ("mopo", "morel", "combo")


def _entry(algo: str) -> tuple[type[LearnerConfig], Trainer]:
    if algo not in ALGORITHMS:
        raise InputError(f"unknown algorithm '{algo}'; expected one of {sorted(ALGORITHMS)}.")
    return ALGORITHMS[algo]


def default_config(algo: str, **overrides: Any) -> LearnerConfig:
    """The algorithm's `<Algo>Config` with `overrides` applied (`constraint` may be a dict)."""
    return _entry(algo)[0]().replace(**overrides)


def train_policy(algo: str, transitions: TransitionSet, behavior: Any, dynamics: DynamicsModel | None,
                 config: LearnerConfig | None = None) -> LearnedPolicy:
    """Train `algo` ("bc", "cql", "mopo", "morel", "combo") and return the LearnedPolicy."""
    config_type, trainer = _entry(algo)
    config = config or config_type()
    if not isinstance(config, config_type):
        raise InputError(f"{algo}: expected a {config_type.__name__}, got {type(config).__name__}.")
    return trainer(transitions, behavior, dynamics, config)
