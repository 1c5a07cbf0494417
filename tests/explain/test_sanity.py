import numpy as np
import torch
from torch import nn

from clinical_mborl.explain.contrast import action_contrast, scalar_contrast
from clinical_mborl.explain.sanity import (
    parameter_layers,
    parameter_randomisation_check,
    rank_correlation,
)

from .nets import FixedFunction


def test_real_network_passes_and_cascade_covers_every_layer(q_net):
    x = torch.randn(48, 6)
    target = action_contrast(q_net, torch.full((48,), 3), torch.zeros(48, dtype=torch.long))
    res = parameter_randomisation_check(target, x, torch.zeros(6), threshold=0.5)
    assert res.passed, res.reason
    assert res.full_randomisation_spearman < 0.5
    assert [s.name for s in res.cascading] == ["top 1", "top 2", "full"]
    assert res.cascading[-1].layers == parameter_layers(q_net) == ["4", "2", "0"]


def test_fixed_function_fails_the_check():
    x = torch.randn(32, 6)
    res = parameter_randomisation_check(scalar_contrast(FixedFunction(6)), x, torch.zeros(6))
    assert not res.passed
    assert res.full_randomisation_spearman == 1.0


class NoParams(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1)


def test_module_without_parameters_fails_with_reason():
    res = parameter_randomisation_check(scalar_contrast(NoParams()), torch.randn(4, 3), torch.zeros(3))
    assert not res.passed and "no parameters" in res.reason


def test_check_leaves_the_original_network_untouched(q_net):
    before = {k: v.clone() for k, v in q_net.state_dict().items()}
    target = action_contrast(q_net, torch.full((8,), 1), torch.zeros(8, dtype=torch.long))
    parameter_randomisation_check(target, torch.randn(8, 6), torch.zeros(6), n_repeats=1)
    assert all(torch.equal(before[k], v) for k, v in q_net.state_dict().items())


def test_rank_correlation_bounds():
    a = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    assert rank_correlation(a, a) == 1.0
    assert rank_correlation(a, -a) == -1.0
    assert rank_correlation(a, np.zeros_like(a)) == 0.0
    assert rank_correlation(a, -a, absolute=True) == 1.0
