"""Dynamics stage: a probabilistic Gaussian ensemble of the patient's response (Lightning).

`fit_dynamics(transitions, DynamicsConfig()) -> DynamicsEnsemble`; `DynamicsEnsemble.load(path)`;
`LearnedEnvironment` / `rollout` for batched model rollouts.
"""

from clinical_mborl.dynamics.config import DynamicsConfig
from clinical_mborl.dynamics.ensemble import (
    DynamicsEnsemble,
    EnsemblePrediction,
    ModelStep,
    RewardInfo,
)
from clinical_mborl.dynamics.env import LearnedEnvironment, Rollout, rollout, start_states
from clinical_mborl.dynamics.fit import fit_dynamics

__all__ = [
    "DynamicsConfig",
    "DynamicsEnsemble",
    "EnsemblePrediction",
    "LearnedEnvironment",
    "ModelStep",
    "RewardInfo",
    "Rollout",
    "fit_dynamics",
    "rollout",
    "start_states",
]
