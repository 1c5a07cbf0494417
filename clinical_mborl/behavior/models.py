"""Networks, losses and training loop for one cross-fitting fold of the behaviour policy.

Discrete dose levels: an MLP (or, with no hidden layer, a multinomial logistic model) on
normalised states gives one logit per joint dose level; a temperature T fitted on the fold's
inner calibration patients rescales the logits (Guo et al., ICML 2017).

Continuous doses: per dimension j a zero-inflated log-normal, dimensions independent given s::

    P(dose_j > 0 | s) = sigmoid(l_j(s) / T_j)
    log(dose_j) | dose_j > 0, s ~ Normal(mu_j(s), (c_j * sigma_j(s))^2)

so that log pi(d | s) = sum_j [d_j = 0] log(1 - p_j) + [d_j > 0] (log p_j + log N(log d_j) - log d_j)
(the last term is the Jacobian from log-dose to dose units). A log-normal rather than a Gaussian on
log1p(dose) keeps the density on positive doses only: for small-unit doses (ug/kg/min) log1p is
nearly linear and a Gaussian on it would put mass on negative doses. T_j and c_j are fitted on the
inner calibration patients.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor, nn
from torch.nn import functional as F

from clinical_mborl.behavior.config import BehaviorConfig

LOG_T_BOUNDS = (math.log(0.05), math.log(20.0))


def build_mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """Linear layers with Swish (SiLU) between them; `hidden=()` is a single linear map."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class DiscreteBehaviorNet(nn.Module):
    """Normalised states [n, d] -> logits over joint dose levels [n, A]."""

    def __init__(self, in_dim: int, n_actions: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.mlp = build_mlp(in_dim, n_actions, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class ContinuousBehaviorNet(nn.Module):
    """Normalised states [n, d] -> (zero-logit, log-dose mean, log-dose std), each [n, k].

    `loc`/`scale` (buffers) are the train mean/std of log(dose) over positive doses, so the raw
    network output is on a unit scale whatever the dose unit.
    """

    loc: Tensor
    scale: Tensor

    def __init__(self, in_dim: int, n_dims: int, hidden: tuple[int, ...], min_std: float) -> None:
        super().__init__()
        self.n_dims = n_dims
        self.min_std = min_std
        self.mlp = build_mlp(in_dim, 3 * n_dims, hidden)
        self.register_buffer("loc", torch.zeros(n_dims))
        self.register_buffer("scale", torch.ones(n_dims))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.mlp(x)
        k = self.n_dims
        logit, mu_raw, s_raw = out[:, :k], out[:, k : 2 * k], out[:, 2 * k :]
        mu = self.loc + self.scale * mu_raw
        sigma = self.scale * (F.softplus(s_raw) + self.min_std)
        return logit, mu, sigma


def zero_inflated_log_density(
    logit: Tensor, mu: Tensor, sigma: Tensor, doses: Tensor, per_dim: bool = False
) -> Tensor:
    """log pi(doses | s) of the zero-inflated log-normal, [n] (or [n, k] with `per_dim`)."""
    pos = doses > 0
    log_d = torch.log(torch.where(pos, doses, torch.ones_like(doses)))
    z = (log_d - mu) / sigma
    log_normal = -0.5 * z.square() - torch.log(sigma) - 0.5 * math.log(2 * math.pi) - log_d
    ld = torch.where(pos, -F.softplus(-logit) + log_normal, -F.softplus(logit))
    return ld if per_dim else ld.sum(-1)


def train_fold_network(
    net: nn.Module,
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor],
    x_fit: Tensor,
    y_fit: Tensor,
    x_cal: Tensor,
    y_cal: Tensor,
    config: BehaviorConfig,
    generator: torch.Generator,
) -> nn.Module:
    """Adam on (x_fit, y_fit); keep the weights with the lowest loss on (x_cal, y_cal).

    `loss_fn(net, x, y)` returns a mean loss. Stops after `config.patience` epochs without a
    better calibration loss.
    """
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    best = math.inf
    best_state = copy.deepcopy(net.state_dict())
    wait = 0
    n = x_fit.shape[0]
    for _ in range(config.max_epochs):
        net.train()
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            idx = perm[start : start + config.batch_size]
            loss = loss_fn(net, x_fit[idx], y_fit[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            cal = float(loss_fn(net, x_cal, y_cal))
        if cal < best - 1e-6:
            best, best_state, wait = cal, copy.deepcopy(net.state_dict()), 0
        else:
            wait += 1
            if wait >= config.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return net


def discrete_loss(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of the logged joint dose level."""
    return F.cross_entropy(net(x), y)


def continuous_loss(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-density of the logged doses."""
    logit, mu, sigma = net(x)
    return -zero_inflated_log_density(logit, mu, sigma, y).mean()


def _bounded_log_scale(nll: Callable[[float], float]) -> float:
    """argmin over log T within LOG_T_BOUNDS of a 1-D NLL (deterministic Brent search)."""
    res = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def fit_temperature(logits: Tensor, y: Tensor) -> float:
    """Temperature T minimising the NLL of softmax(logits / T) on calibration rows."""
    lg = logits.double()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(lg / math.exp(log_t), y))

    return _bounded_log_scale(nll)


def fit_zero_inflated_calibration(
    logit: Tensor, mu: Tensor, sigma: Tensor, doses: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-dimension temperature on the zero logit and scale on the log-dose std.

    The std scale has the closed form c_j = sqrt(mean(z^2)) over positive doses
    (maximum likelihood for a common variance factor); 1 where a dimension has no positive dose.
    """
    k = logit.shape[1]
    temps, scales = torch.ones(k), torch.ones(k)
    for j in range(k):
        treated = (doses[:, j] > 0).double()
        lj = logit[:, j].double()

        def nll(log_t: float, lj: Tensor = lj, treated: Tensor = treated) -> float:
            return float(F.binary_cross_entropy_with_logits(lj / math.exp(log_t), treated))

        if 0 < float(treated.mean()) < 1:
            temps[j] = _bounded_log_scale(nll)
        pos = doses[:, j] > 0
        if bool(pos.any()):
            z = (torch.log(doses[pos, j]) - mu[pos, j]) / sigma[pos, j]
            scales[j] = float(torch.sqrt(z.double().square().mean()).clamp(0.2, 5.0))
    return temps, scales


def patient_folds(patient: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Assign each row the fold of its patient (patients shuffled, then dealt round-robin)."""
    uniq = np.unique(patient)
    rng = np.random.default_rng(seed)
    order = rng.permutation(uniq.size)
    fold_of = np.empty(uniq.size, dtype=np.int64)
    fold_of[order] = np.arange(uniq.size) % n_folds
    return fold_of[np.searchsorted(uniq, patient)]


def inner_calibration_mask(patient: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for rows of a random `fraction` of the patients (at least one, never all)."""
    uniq = np.unique(patient)
    rng = np.random.default_rng(seed)
    n_cal = min(max(1, round(fraction * uniq.size)), uniq.size - 1)
    chosen = rng.choice(uniq, size=n_cal, replace=False)
    return np.isin(patient, chosen)
