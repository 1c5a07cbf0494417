"""The ensemble on a CUDA device (skipped without one)."""

from __future__ import annotations

import pytest
import torch

from clinical_mborl.cohort import TransitionSet
from clinical_mborl.dynamics import DynamicsEnsemble, fit_dynamics

from .conftest import TINY

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_fit_runs_on_gpu(toy: TransitionSet) -> None:
    ens = fit_dynamics(toy, TINY.model_copy(update={"max_epochs": 2}), quiet=True)
    assert ens.metrics["device"].startswith("cuda")


def test_prediction_on_gpu_matches_cpu(ensemble: DynamicsEnsemble, toy: TransitionSet) -> None:
    import copy

    a = toy.split("train").arrays()
    s, act, k = torch.as_tensor(a.states), torch.as_tensor(a.actions), torch.as_tensor(a.step)
    cpu = ensemble.predict(s, act, k)
    gpu_ens = copy.deepcopy(ensemble).to("cuda")
    gpu = gpu_ens.predict(s.cuda(), act.cuda(), k.cuda())
    torch.testing.assert_close(gpu.next_mean.cpu(), cpu.next_mean, rtol=1e-4, atol=1e-4)
    out = gpu_ens.step(s.cuda(), act.cuda(), k.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert out.next_states.device.type == "cuda"
