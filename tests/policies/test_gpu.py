"""Training on a CUDA device: buffers, generators, rollouts and the returned policy line up."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from clinical_mborl.policies import default_config, train_policy

from .conftest import FAST_MODEL, Cohort

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("algo", ["combo", "morel"])
def test_trains_on_the_gpu_with_the_ensemble_there_too(algo: str, cohort: Cohort) -> None:
    dynamics = copy.deepcopy(cohort.dynamics).to("cuda")
    config = default_config(algo, n_updates=12, **FAST_MODEL)
    policy = train_policy(algo, cohort.transitions, cohort.behavior, dynamics, config)
    assert all(p.device.type == "cpu" for p in policy.network.parameters())
    x = cohort.raw_states()
    out = policy.action_probabilities(x) if cohort.kind == "discrete" else policy.mean_doses(x)
    assert np.isfinite(out).all()
    again = train_policy(algo, cohort.transitions, cohort.behavior, dynamics, config)
    for a, b in zip(policy.network.state_dict().values(), again.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)
