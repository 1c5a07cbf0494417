"""Small networks shared by the explain tests."""

from __future__ import annotations

import torch
from torch import nn


def trained_q_net(d: int = 6, n_actions: int = 4, seed: int = 0) -> nn.Module:
    """A Swish MLP fitted briefly to Q(s, a) = a * (s @ w): a smooth, weight-dependent contrast."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, n_actions))
    w = torch.linspace(-1.0, 1.0, d)
    x = torch.randn(256, d)
    y = torch.stack([(x @ w) * a for a in range(n_actions)], dim=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return net


class FixedFunction(nn.Module):
    """Has a weight but ignores it: attributions cannot depend on the weights."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.unused = nn.Linear(d, 1)
        self.register_buffer("w", torch.linspace(-1.0, 1.0, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.w).sum(1, keepdim=True) + 0.0 * self.unused.weight.sum()
