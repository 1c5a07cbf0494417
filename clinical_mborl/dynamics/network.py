"""The ensemble network: members vectorised as one batched layer, weights [members, in, out].

Each member maps model inputs (normalised state, dose features, scaled step) to
  - a Gaussian over the standardised (state change, intermediate reward): mean and log-variance,
  - termination logits (continue / death / discharge),
  - a death-after-the-window logit (meaningful at the window's last step).
Log-variances are kept inside learnable soft bounds (Chua et al., PETS 2018):
logvar = max - softplus(max - raw); logvar = min + softplus(logvar - min), which lies above min
and at most log(1 + exp(min - max)) above max (2.7e-5 with the default bounds).

>>> net = GaussianEnsemble(n_members=3, in_dim=5, out_dim=4, hidden_sizes=(8,))
>>> net(torch.zeros(2, 5)).mean.shape
torch.Size([3, 2, 4])
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

N_TERM = 3  # continue, death, discharge


class EnsembleLinear(nn.Module):
    """M independent affine maps applied in one `torch.baddbmm`: x [M, n, in] -> [M, n, out]."""

    def __init__(self, n_members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(n_members, 1, out_dim))
        std = 1.0 / (2.0 * math.sqrt(in_dim))
        nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleOutput(NamedTuple):
    """Raw network output (standardised target space), leading dimension = members."""

    mean: Tensor  # [M, n, out_dim]
    logvar: Tensor  # [M, n, out_dim]
    term_logits: Tensor  # [M, n, 3]
    outcome_logit: Tensor  # [M, n]


class GaussianEnsemble(nn.Module):
    """Probabilistic ensemble with Swish hidden layers and bounded log-variances."""

    def __init__(
        self,
        n_members: int,
        in_dim: int,
        out_dim: int,
        hidden_sizes: tuple[int, ...] = (200, 200, 200, 200),
        init_max_logvar: float = 0.5,
        init_min_logvar: float = -10.0,
    ) -> None:
        super().__init__()
        self.n_members, self.in_dim, self.out_dim = n_members, in_dim, out_dim
        widths = [in_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(EnsembleLinear(n_members, a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.head = EnsembleLinear(n_members, widths[-1], 2 * out_dim + N_TERM + 1)
        self.max_logvar = nn.Parameter(torch.full((out_dim,), float(init_max_logvar)))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), float(init_min_logvar)))

    @property
    def hidden_layers(self) -> list[EnsembleLinear]:
        return [cast(EnsembleLinear, layer) for layer in self.hidden]

    def bound_logvar(self, raw: Tensor) -> Tensor:
        """Soft-clamp raw log-variances into (min_logvar, max_logvar)."""
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
        return self.min_logvar + F.softplus(logvar - self.min_logvar)

    def logvar_bound_penalty(self) -> Tensor:
        """sum(max_logvar) - sum(min_logvar): keeps the learnable bounds from drifting apart."""
        return self.max_logvar.sum() - self.min_logvar.sum()

    def _split(self, h: Tensor) -> EnsembleOutput:
        d = self.out_dim
        mean, raw = h[..., :d], h[..., d : 2 * d]
        return EnsembleOutput(mean, self.bound_logvar(raw), h[..., 2 * d : 2 * d + N_TERM], h[..., -1])

    def forward(self, x: Tensor) -> EnsembleOutput:
        """x [n, in] (shared by all members) or [M, n, in] (one batch per member)."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        for layer in self.hidden:
            x = F.silu(layer(x))
        return self._split(self.head(x))

    def forward_member(self, x: Tensor, member: int) -> EnsembleOutput:
        """Reference, unvectorised: one member on x [n, in] with plain `F.linear` (leading dim 1).

        For tests and the speed benchmark; training and prediction use `forward`.
        """
        for layer in self.hidden_layers:
            x = F.silu(F.linear(x, layer.weight[member].T, layer.bias[member, 0]))
        h = F.linear(x, self.head.weight[member].T, self.head.bias[member, 0])
        out = self._split(h)
        return EnsembleOutput(*(t.unsqueeze(0) for t in out))
