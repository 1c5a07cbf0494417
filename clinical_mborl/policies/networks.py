"""Networks shared by every policy learner.

Discrete dose levels: a Q-network (or twin Q-networks) scoring every joint action, and a
categorical actor. Continuous doses: a tanh-Gaussian actor whose samples are scaled to
[0, dose_max] per dimension (zero below a small cut), and twin critics Q(s, a) taking the
box-scaled action a in [-1, 1].

Every network is rebuilt from a small JSON `spec` (`build_network`), so a policy artifact holds
only the spec and safetensors weights.

>>> actor = build_network(network_spec("tanh_gaussian", 4, 2, [8], dose_max=[1.0, 2.0], zero_fraction=0.02))
>>> actor.mean_doses(torch.zeros(3, 4)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
EDGE = 1e-3  # scaled doses are kept in [-1 + EDGE, 1 - EDGE] so log-densities stay finite


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """Fully connected ReLU network `in_dim -> hidden... -> out_dim`."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, int(width)), nn.ReLU()]
        last = int(width)
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class DiscreteQ(nn.Module):
    """Q(s, .) for every joint dose level: states [n, d] -> [n, A]."""

    def __init__(self, in_dim: int, n_actions: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp(in_dim, n_actions, hidden)

    def forward(self, states: Tensor) -> Tensor:
        return self.net(states)


class TwinMLP(nn.Module):
    """Two ReLU MLPs evaluated as one batched network (weights [2, in, out], one `baddbmm` per
    layer; each member is initialised like `nn.Linear`): [n, in] -> [2, n, out]."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        dims = [in_dim, *[int(h) for h in hidden], out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims, dims[1:], strict=False):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(2, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(2, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: Tensor) -> Tensor:
        h = x.unsqueeze(0).expand(2, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h


class TwinDiscreteQ(nn.Module):
    """Two independent discrete Q-networks (clipped double-Q for discrete SAC): [2, n, A]."""

    def __init__(self, in_dim: int, n_actions: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = TwinMLP(in_dim, n_actions, hidden)

    def forward(self, states: Tensor) -> Tensor:
        return self.net(states)


class TwinContinuousQ(nn.Module):
    """Two critics Q(s, a) with a = dose scaled to [-1, 1]: ([..., d], [..., k]) -> [2, ...]."""

    def __init__(self, in_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = TwinMLP(in_dim + action_dim, 1, hidden)

    def forward(self, states: Tensor, scaled_actions: Tensor) -> Tensor:
        x = torch.cat([states, scaled_actions], dim=-1)
        return self.net(x).squeeze(-1)


class CategoricalActor(nn.Module):
    """Logits of a categorical policy over joint dose levels: [n, d] -> [n, A]."""

    def __init__(self, in_dim: int, n_actions: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp(in_dim, n_actions, hidden)

    def forward(self, states: Tensor) -> Tensor:
        return self.net(states)


def scale_doses(doses: Tensor, dose_max: Tensor) -> Tensor:
    """Clinical doses -> the box-scaled action in [-1 + EDGE, 1 - EDGE] (critics' input)."""
    return (2.0 * doses / dose_max - 1.0).clamp(-1.0 + EDGE, 1.0 - EDGE)


class TanhGaussianActor(nn.Module):
    """pi(dose | s): u ~ N(mu(s), sigma(s)), scaled action a = tanh(u) in (-1, 1), and
    dose = (a + 1) / 2 * dose_max, set to exactly 0 (no treatment) below `zero_fraction * dose_max`.

    The zero cut makes the dose distribution zero-inflated like clinicians' (a probability mass
    P(a <= cut) at zero, a density above the cut), so "no vasopressor" is a reachable action.
    Learners work with the scaled action a (critics' input; entropies use the uncensored
    log-density `sample` returns); `log_prob_doses` gives the censored log-likelihood in clinical
    units (mass for zero doses, density for doses above the cut, -inf in between).
    """

    dose_max: Tensor

    def __init__(self, in_dim: int, action_dim: int, hidden: Sequence[int], dose_max: Sequence[float],
                 zero_fraction: float = 0.0) -> None:
        super().__init__()
        if len(dose_max) != action_dim or any(m <= 0 for m in dose_max):
            raise ValueError(f"dose_max needs {action_dim} positive values, got {list(dose_max)}")
        if not 0.0 <= zero_fraction < 1.0:
            raise ValueError(f"zero_fraction must be in [0, 1), got {zero_fraction}")
        self.net = mlp(in_dim, 2 * action_dim, hidden)
        self.register_buffer("dose_max", torch.tensor([float(m) for m in dose_max]))
        self.action_dim = action_dim
        self.zero_fraction = float(zero_fraction)
        self.cut = 2.0 * self.zero_fraction - 1.0  # scaled actions <= cut give zero dose

    def _dist(self, states: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_std = self.net(states).chunk(2, dim=-1)
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def scale(self, doses: Tensor) -> Tensor:
        """Clinical doses -> [-1 + EDGE, 1 - EDGE] (zero doses land below the cut)."""
        return scale_doses(doses, self.dose_max)

    def to_doses(self, scaled: Tensor) -> Tensor:
        """Scaled actions -> clinical doses in [0, dose_max], zero below the cut."""
        doses = (scaled + 1.0) * 0.5 * self.dose_max
        return torch.where(scaled <= self.cut, torch.zeros_like(doses), doses) if self.zero_fraction > 0 else doses

    def _per_dim(self, states: Tensor, scaled: Tensor) -> tuple[Tensor, Tensor]:
        """(log-density of a in (-1, 1), log P(a <= cut)) per dimension, [n, k] each."""
        mu, log_std = self._dist(states)
        a = scaled.clamp(-1.0 + EDGE, 1.0 - EDGE)
        u = torch.atanh(a)
        density = (-0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
                   - torch.log1p(-a.pow(2)))
        mass = torch.special.log_ndtr((math.atanh(max(self.cut, -1.0 + EDGE)) - mu) / log_std.exp())
        return density, mass

    def log_likelihood(self, states: Tensor, scaled: Tensor) -> Tensor:
        """Censored log-likelihood of scaled actions (mass at or below the cut), [n]: BC's objective."""
        density, mass = self._per_dim(states, scaled)
        if self.zero_fraction <= 0:
            return density.sum(-1)
        return torch.where(scaled <= self.cut, mass, density).sum(-1)

    def log_prob_doses(self, states: Tensor, doses: Tensor) -> Tensor:
        """log pi(dose | s) in clinical units (zero: mass; above the cut: density; between: -inf). [n]."""
        density, mass = self._per_dim(states, self.scale(doses))
        density = density - torch.log(self.dose_max * 0.5)
        if self.zero_fraction <= 0:
            return density.sum(-1)
        zero, gap = doses <= 0, (doses > 0) & (doses < self.zero_fraction * self.dose_max)
        per_dim = torch.where(zero, mass, torch.where(gap, torch.full_like(density, -math.inf), density))
        return per_dim.sum(-1)

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Reparameterised sample: (scaled action [n, k], uncensored log pi(a|s) [n])."""
        mu, log_std = self._dist(states)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        u = mu + log_std.exp() * eps
        normal = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        # log(1 - tanh(u)^2) written stably: 2 (log 2 - u - softplus(-2u))
        log_det = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))
        return torch.tanh(u).clamp(-1.0 + EDGE, 1.0 - EDGE), (normal - log_det).sum(-1)

    def mean_doses(self, states: Tensor) -> Tensor:
        """The deterministic recommendation: doses of tanh(mu(s)), [n, k]."""
        mu, _ = self._dist(states)
        return self.to_doses(torch.tanh(mu))

    def forward(self, states: Tensor) -> Tensor:
        return self.mean_doses(states)


def build_network(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a network from its JSON spec (the `network` entry of a policy artifact)."""
    kind, hidden = spec["type"], [int(h) for h in spec["hidden"]]
    in_dim, out_dim = int(spec["in_dim"]), int(spec["out_dim"])
    if kind == "discrete_q":
        return DiscreteQ(in_dim, out_dim, hidden)
    if kind == "twin_discrete_q":
        return TwinDiscreteQ(in_dim, out_dim, hidden)
    if kind == "twin_continuous_q":
        return TwinContinuousQ(in_dim, out_dim, hidden)
    if kind == "categorical":
        return CategoricalActor(in_dim, out_dim, hidden)
    if kind == "tanh_gaussian":
        return TanhGaussianActor(in_dim, out_dim, hidden, [float(m) for m in spec["dose_max"]],
                                 float(spec.get("zero_fraction", 0.0)))
    raise ValueError(f"unknown network type '{kind}'")


def network_spec(kind: str, in_dim: int, out_dim: int, hidden: Sequence[int],
                 dose_max: Sequence[float] | None = None, zero_fraction: float = 0.0) -> dict[str, Any]:
    """The JSON spec `build_network` reads."""
    spec: dict[str, Any] = {"type": kind, "in_dim": in_dim, "out_dim": out_dim, "hidden": list(hidden)}
    if dose_max is not None:
        spec["dose_max"] = [float(m) for m in dose_max]
        spec["zero_fraction"] = float(zero_fraction)
    return spec


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau online (Lillicrap et al. 2016)."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters(), strict=True):
            t.lerp_(o, tau)


class frozen:  # noqa: N801 - used as a context manager, reads like a keyword
    """Temporarily stop gradients into `module`'s parameters (actor steps leave critics alone)."""

    def __init__(self, module: nn.Module) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)
