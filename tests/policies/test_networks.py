"""Networks: the zero-inflated tanh-Gaussian dose distribution and network specs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clinical_mborl.policies.networks import (
    TanhGaussianActor,
    TwinMLP,
    build_network,
    network_spec,
    polyak_update,
)


def _actor(zero_fraction: float) -> TanhGaussianActor:
    torch.manual_seed(0)
    return TanhGaussianActor(3, 1, (8,), [4.0], zero_fraction).requires_grad_(False)


@pytest.mark.parametrize("zero_fraction", [0.0, 0.05])
def test_dose_distribution_integrates_to_one(zero_fraction: float) -> None:
    """Mass at zero dose + integral of the density over (cut, dose_max] = 1."""
    actor = _actor(zero_fraction)
    state = torch.randn(1, 3)
    grid = torch.linspace(max(zero_fraction, 1e-4) * 4.0, 4.0 * (1 - 1e-6), 200_001)
    density = actor.log_prob_doses(state.expand(len(grid), 3), grid[:, None]).exp().double().numpy()
    total = float(np.trapezoid(density, grid.double().numpy()))
    if zero_fraction > 0:
        total += actor.log_prob_doses(state, torch.zeros(1, 1)).exp().item()
    assert total == pytest.approx(1.0, abs=5e-3)


def test_doses_below_the_cut_are_zero_and_impossible_to_log() -> None:
    actor = _actor(0.05)
    scaled = torch.tensor([[-0.95], [-0.91], [-0.89], [0.5]])  # cut at -0.9
    assert actor.to_doses(scaled).squeeze(-1).tolist() == pytest.approx([0.0, 0.0, 0.22, 3.0])
    ld = actor.log_prob_doses(torch.zeros(3, 3), torch.tensor([[0.0], [0.1], [0.3]]))
    assert math.isfinite(ld[0]) and ld[1] == -math.inf and math.isfinite(ld[2])


def test_samples_match_their_reported_log_density() -> None:
    actor = _actor(0.0)
    states = torch.randn(5, 3)
    scaled, log_p = actor.sample(states, torch.Generator().manual_seed(0))
    density, _ = actor._per_dim(states, scaled)
    torch.testing.assert_close(log_p, density.sum(-1), rtol=1e-4, atol=1e-4)
    assert ((scaled > -1) & (scaled < 1)).all()


def test_censored_likelihood_uses_the_mass_for_untreated_rows() -> None:
    actor = _actor(0.05)
    states = torch.randn(2, 3)
    lik = actor.log_likelihood(states, torch.tensor([[-0.999], [0.2]]))
    doses = actor.to_doses(torch.tensor([[-0.999], [0.2]]))
    jac = math.log(2.0)  # density per unit dose = density per unit scaled action / (dose_max / 2)
    np.testing.assert_allclose(lik.numpy(),
                               (actor.log_prob_doses(states, doses) + torch.tensor([0.0, jac])).numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("kind, out", [("discrete_q", 9), ("twin_discrete_q", 9), ("categorical", 9),
                                       ("twin_continuous_q", 2), ("tanh_gaussian", 2)])
def test_networks_rebuild_from_their_spec(kind: str, out: int) -> None:
    spec = network_spec(kind, 4, out, [8], dose_max=[1.0, 2.0] if kind == "tanh_gaussian" else None)
    a, b = build_network(spec), build_network(spec)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="unknown network type"):
        build_network({**spec, "type": "transformer"})


def test_polyak_moves_the_target_a_fraction_of_the_way() -> None:
    online, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = target.weight.detach().clone()
    polyak_update(target, online, 0.25)
    torch.testing.assert_close(target.weight, before + 0.25 * (online.weight - before))


def test_twin_mlp_members_are_independent_mlps() -> None:
    torch.manual_seed(0)
    twin = TwinMLP(3, 2, (5,))
    x = torch.randn(4, 3)
    out = twin(x)
    for m in range(2):
        h = torch.relu(x @ twin.weights[0][m] + twin.biases[0][m])
        torch.testing.assert_close(out[m], h @ twin.weights[1][m] + twin.biases[1][m])
    assert not torch.allclose(out[0], out[1])
