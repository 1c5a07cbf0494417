"""Shared fixtures for the scoring tests: a toy cohort, a tiny fitted clinician, a tiny dynamics
ensemble, a MOReL artifact and a protocol file (session-scoped: each takes about a second)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clinical_mborl.behavior import BehaviorConfig, ClinicianPolicy, fit_behavior
from clinical_mborl.cohort import TransitionSet
from clinical_mborl.cohort.toy import make_toy_transitions
from clinical_mborl.dynamics import DynamicsConfig, DynamicsEnsemble, fit_dynamics
from clinical_mborl.ope import OPEConfig
from clinical_mborl.ope.fqe import FQEConfig
from clinical_mborl.policies import MorelConfig, train_policy
from clinical_mborl.scoring import ScoringConfig

TINY_BEHAVIOR = BehaviorConfig(n_folds=2, hidden_sizes=(), max_epochs=3, seed=0)
FAST_OPE = OPEConfig(n_resamples=200, model_rollouts=2, fqe=FQEConfig(hidden_sizes=(16,), epochs_per_iteration=2))
PROTOCOL = """name: map-protocol
description: vasopressor below MAP 70
rules:
  - when: {map_mmhg: {lt: 70}}
    then: {norepinephrine_ug_kg_min: 2}
softening: 0.1
"""


@dataclass(frozen=True)
class Toy:
    """A toy cohort with its fitted clinician, ensemble, and candidate files under `root`."""

    transitions: TransitionSet
    behavior: ClinicianPolicy
    dynamics: DynamicsEnsemble
    morel: Path
    protocol: Path
    root: Path

    def config(self, jobs: int | None = 1) -> ScoringConfig:
        return ScoringConfig(ope=FAST_OPE, jobs=jobs)


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Toy:
    root = tmp_path_factory.mktemp("scoring")
    ts = make_toy_transitions(n_patients=80, seed=1)
    behavior = fit_behavior(ts, TINY_BEHAVIOR)
    dynamics = fit_dynamics(ts, DynamicsConfig(n_members=3, n_elites=2, hidden_sizes=(16,), max_epochs=2),
                            quiet=True)
    morel = train_policy("morel", ts, behavior, dynamics, MorelConfig().replace(
        kappa=1.0, n_updates=8, batch_size=32, hidden=(16,), quiet=True, rollout_batch=32,
        rollout_every=4, horizon=2, constraint={"support_threshold": 0.05}))
    morel.save(root / "morel_run")
    (root / "map_protocol.yaml").write_text(PROTOCOL)
    return Toy(ts, behavior, dynamics, root / "morel_run", root / "map_protocol.yaml", root)
