import pytest
import torch

from clinical_mborl.core.errors import InputError
from clinical_mborl.explain.contrast import (
    action_contrast,
    feature_groups,
    group_mask,
    scalar_contrast,
)


def test_feature_groups_pair_measurement_with_its_missing_indicator():
    names = ["map", "lactate", "map_missing", "age", "orphan_missing"]
    assert feature_groups(names) == [("map", "map_missing"), ("lactate",), ("age",), ("orphan_missing",)]
    mask = group_mask(names, feature_groups(names))
    assert mask.tolist() == [[0, 1, 0, 2, 3]]


def test_group_mask_rejects_incomplete_groups():
    with pytest.raises(InputError):
        group_mask(["a", "b"], [("a",)])


def test_action_contrast_is_difference_of_selected_outputs():
    net = torch.nn.Linear(3, 4)
    x = torch.randn(5, 3)
    rec, ref = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([3, 3, 0, 1, 0])
    out = net(x)
    expected = out[torch.arange(5), rec] - out[torch.arange(5), ref]
    assert torch.allclose(action_contrast(net, rec, ref)(x), expected)
    sub = action_contrast(net, rec, ref).subset(torch.tensor([1, 4]))
    assert torch.allclose(sub(x[[1, 4]]), expected[[1, 4]])


def test_action_contrast_rejects_misaligned_actions():
    with pytest.raises(InputError):
        action_contrast(torch.nn.Linear(2, 2), torch.tensor([0, 1]), torch.tensor([0]))


def test_scalar_contrast_flattens_single_output():
    net = torch.nn.Linear(3, 1)
    assert scalar_contrast(net)(torch.zeros(4, 3)).shape == (4,)
