"""The M-member Q-network of fitted Q evaluation, with an optional randomized prior per member.

Randomized prior functions (Osband, Aslanides & Cassirer, NeurIPS 2018): member m's Q-values are
f_m(x) + g * p_m(x), where p_m is a second network of the same shape, drawn at initialisation and
never trained, and f_m is trained as usual. Where the fit rows pin Q down, f_m learns to cancel
p_m and the members agree; at doses the clinicians rarely gave in a state, nothing cancels p_m and
the members keep the prior's disagreement. So the members' spread -- which Rubin's interval and
the bootstrap pairing read -- grows where FQE extrapolates instead of only where the data are noisy.
With `prior_mask`, the prior applies only where the input's mask columns say so (`FQEConfig.prior_where
= "off_support"`: doses the clinician model gives with probability under the support threshold), so
the members need not cancel it at the doses the data hold.

`prior_gain` makes the prior's size a number a reader can check: the gain at which the prior
alone puts a root-mean-square spread of `spread` (reward units) between the members' Q-values on
the given rows, before any training.

>>> torch.manual_seed(0) is not None
True
>>> net = QNetwork(3, 2, (8,), n_members=4, with_prior=True)
>>> x = torch.randn(50, 3)
>>> net.prior_gain = prior_gain(net, x, spread=0.1, scale=1.0)
>>> round(float(net.prior(x).mul(net.prior_gain).var(dim=0, unbiased=False).mean().sqrt()), 6)
0.1
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _mlp(x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    """[M, n, out]: the batched MLP (SiLU between layers) on features x [n, f]."""
    z = x.expand(weights[0].shape[0], *x.shape)
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = torch.baddbmm(b, z, w)
        z = F.silu(z) if i < last else z
    return z


def _init_layers(widths: list[int], n_members: int) -> list[tuple[Tensor, Tensor]]:
    """Per layer (weight [M, in, out], bias [M, 1, out]), each member drawn as `nn.Linear` draws."""
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        bound = 1.0 / fan_in**0.5
        layers.append((torch.empty(n_members, fan_in, fan_out).uniform_(-bound, bound),
                       torch.empty(n_members, 1, fan_out).uniform_(-bound, bound)))
    return layers


class QNetwork(nn.Module):
    """M independent Q(s, .) MLPs in one batched module: features [n, f] -> values [M, n, A]
    (in units of `scale` reward). Each member's layers are initialised as `nn.Linear` would.
    `with_prior`: each member also carries a frozen random network of the same shape (drawn after
    the trainable layers, so they are the same with or without it), added with weight
    `prior_gain` (0 until set)."""

    def __init__(self, in_dim: int, n_actions: int, hidden_sizes: tuple[int, ...], n_members: int = 1,
                 with_prior: bool = False, prior_mask: bool = False) -> None:
        super().__init__()
        if prior_mask and not with_prior:
            raise ValueError("QNetwork: a prior mask needs a network built with_prior=True.")
        self.mask_columns = n_actions if prior_mask else 0
        widths = [in_dim, *hidden_sizes, n_actions]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for w, b in _init_layers(widths, n_members):
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.n_prior_layers = 0
        if with_prior:
            for i, (w, b) in enumerate(_init_layers(widths, n_members)):
                self.register_buffer(f"prior_weight_{i}", w)
                self.register_buffer(f"prior_bias_{i}", b)
            self.n_prior_layers = len(widths) - 1
            self.register_buffer("prior_gain_value", torch.zeros(()))

    @property
    def n_members(self) -> int:
        return int(self.weights[0].shape[0])

    def _buffer(self, name: str) -> Tensor:
        return cast(Tensor, getattr(self, name))

    @property
    def prior_gain(self) -> float:
        return float(self._buffer("prior_gain_value")) if self.n_prior_layers else 0.0

    @prior_gain.setter
    def prior_gain(self, gain: float) -> None:
        if not self.n_prior_layers:
            raise ValueError("QNetwork: a prior gain needs a network built with_prior=True.")
        self._buffer("prior_gain_value").fill_(gain)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(model inputs, prior mask [n, A] or None): with `prior_mask`, x's last A columns say (1/0)
        where the prior applies, e.g. at doses outside the clinicians' support in that state."""
        if not self.mask_columns:
            return x, None
        return x[:, : -self.mask_columns], x[:, -self.mask_columns:]

    def prior(self, x: Tensor) -> Tensor:
        """[M, n, A]: the members' frozen prior networks at x (mask columns ignored), before gain and mask."""
        names = range(self.n_prior_layers)
        return _mlp(self.split(x)[0], [self._buffer(f"prior_weight_{i}") for i in names],
                    [self._buffer(f"prior_bias_{i}") for i in names])

    def forward(self, x: Tensor) -> Tensor:
        inputs, mask = self.split(x)
        z = _mlp(inputs, list(self.weights), list(self.biases))
        if self.n_prior_layers and self.prior_gain:
            with torch.no_grad():
                prior = self._buffer("prior_gain_value") * self.prior(x)
                if mask is not None:
                    prior = prior * mask
            z = z + prior
        return z


def prior_gain(net: QNetwork, features: Tensor, spread: float, scale: float) -> float:
    """The gain at which `net`'s priors alone give the members' Q-values on `features` a
    root-mean-square between-member sd of `spread` reward units (the network's outputs are in
    units of `scale` reward)."""
    with torch.no_grad():
        sd = net.prior(features).var(dim=0, unbiased=False).mean().sqrt().item()
    if not sd > 0:
        raise ValueError("QNetwork: the prior networks agree on every row (one member?); a prior spread "
                         "needs n_members >= 2.")
    return spread / scale / sd
