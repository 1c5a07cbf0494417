import numpy as np
import torch
from torch import nn

from clinical_mborl.explain.attributions import (
    gradient_shap,
    grouped_attributions,
    integrated_gradients,
)
from clinical_mborl.explain.contrast import (
    action_contrast,
    feature_groups,
    group_mask,
    scalar_contrast,
)


def _linear(d: int = 4) -> nn.Linear:
    net = nn.Linear(d, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
        net.bias.fill_(0.3)
    return net


def test_ig_on_linear_model_is_weight_times_displacement():
    net = _linear()
    x, b = torch.randn(6, 4), torch.tensor([0.1, -0.2, 0.0, 0.5])
    res = integrated_gradients(scalar_contrast(net), x, b, n_steps=8)
    expected = (x - b) * net.weight.detach()
    np.testing.assert_allclose(res.attributions, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert res.completeness.max_abs_delta < 1e-4


def test_ig_completeness_delta_small_on_smooth_model(q_net):
    x = torch.randn(32, 6)
    target = action_contrast(q_net, torch.full((32,), 3), torch.zeros(32, dtype=torch.long))
    res = integrated_gradients(target, x, torch.zeros(6), n_steps=32)
    assert res.completeness.passed
    assert res.completeness.max_relative_delta < 0.05
    np.testing.assert_allclose(res.attributions.sum(1), res.output_gap, atol=0.05 * np.abs(res.output_gap).max())


class Wiggly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(6.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.scale * x).sum(1)


def test_ig_doubles_steps_until_complete_and_records_failure_at_cap():
    x = torch.full((4, 3), 2.0) + 0.1 * torch.randn(4, 3)
    target = scalar_contrast(Wiggly())
    capped = integrated_gradients(target, x, torch.zeros(3), n_steps=2, max_steps=2, tolerance=1e-3)
    assert not capped.completeness.passed and capped.completeness.n_steps == 2
    grown = integrated_gradients(target, x, torch.zeros(3), n_steps=2, max_steps=256, tolerance=1e-3)
    assert grown.completeness.passed and grown.completeness.n_steps > 2


def test_ig_per_row_actions_stay_aligned_after_captum_expansion(q_net):
    x = torch.randn(5, 6)
    rec, ref = torch.tensor([3, 1, 2, 0, 3]), torch.tensor([0, 2, 2, 1, 1])
    batch = integrated_gradients(action_contrast(q_net, rec, ref), x, torch.zeros(6), n_steps=16).attributions
    for i in range(5):
        one = integrated_gradients(action_contrast(q_net, rec[i:i + 1], ref[i:i + 1]), x[i:i + 1],
                                   torch.zeros(6), n_steps=16).attributions
        np.testing.assert_allclose(batch[i], one[0], rtol=1e-4, atol=1e-5)


def test_gradient_shap_on_linear_model_matches_mean_baseline_displacement():
    net = _linear()
    x = torch.randn(3, 4)
    baselines = torch.randn(8, 4)
    attr = gradient_shap(scalar_contrast(net), x, baselines, n_samples=400, seed=1)
    expected = (x - baselines.mean(0)) * net.weight.detach()
    np.testing.assert_allclose(attr, expected.numpy(), atol=0.5)
    np.testing.assert_allclose(attr.sum(1), expected.sum(1).numpy(), atol=0.6)


def test_gradient_shap_keeps_per_row_actions_aligned(q_net):
    x = torch.randn(4, 6)
    rec, ref = torch.tensor([3, 0, 2, 1]), torch.tensor([0, 3, 1, 1])
    attr = gradient_shap(action_contrast(q_net, rec, ref), x, torch.zeros(1, 6), n_samples=64)
    # identical-action row: contrast is identically zero, so its attributions must be zero
    assert np.abs(attr[3]).max() < 1e-6
    assert np.abs(attr[0]).max() > 1e-3


def test_shapley_groups_are_efficient_and_group_the_missing_indicator():
    names = ["a", "b", "a_missing"]
    groups = feature_groups(names)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    target = scalar_contrast(net)
    x, b = torch.randn(5, 3), torch.zeros(3)
    attr = grouped_attributions(target, x, b, group_mask(names, groups), n_samples=300)
    assert attr.shape == (5, 2)
    with torch.no_grad():
        gap = (target(x) - target(b.expand_as(x))).numpy()
    np.testing.assert_allclose(attr.sum(1), gap, rtol=1e-4, atol=1e-5)


def test_feature_ablation_per_group_on_additive_model():
    names = ["a", "b", "a_missing"]
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0, -1.0]]))
        net.bias.zero_()
    x = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    attr = grouped_attributions(scalar_contrast(net), x, torch.zeros(3),
                                group_mask(names, feature_groups(names)), method="ablation")
    np.testing.assert_allclose(attr, [[0.0, 2.0], [1.0, 0.0]], atol=1e-6)
