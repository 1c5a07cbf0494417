"""How far unobserved confounding could move FQE: marginal-sensitivity bounds on the Bellman backup.

FQE learns Q(s, a) for an action a from the stays in which clinicians chose a at s. If clinicians
chose on more than the cohort state (what they saw at the bedside, their own habits), those stays
differ from the others in ways the state does not hold, and Q(s, a) is biased. The study measured
this bias (docs/coverage.md, "Who decides the doses"). No estimator can remove it from these
data; this module says how large it could be.

**Model** (marginal sensitivity model, Tan 2006): the clinicians' real probability of a at s,
given everything they saw, differs from the cohort-state probability pi_b(a | s) by an odds ratio
of at most Lambda >= 1. Lambda = 1 is no confounding (plain FQE).

**Sharp bound of one backup** (Dorn & Guo, JASA 2022; applied per step to FQE as in Bruns-Smith &
Zhou, 2023). With p = pi_b(a | s), the weight that turns the observed outcomes of (s, a) into those
of the whole population at s lies in [a_lo, a_hi] = [p + (1 - p) / Lambda, p + (1 - p) Lambda] and
averages 1. The smallest E[w y | s, a] over such weights is

    Q_lo(s, a) = max_eta { eta + a_lo E[(y - eta)_+ | s, a] - a_hi E[(eta - y)_+ | s, a] },

attained at the tau-quantile of y, tau = (1 - a_lo) / (a_hi - a_lo); the largest, Q_hi, swaps
a_lo and a_hi in the two terms and takes the minimum. Each bound has a second head eta(s, a)
trained on this objective (a rescaled quantile loss), and the value head regresses
z = eta + a_lo (y - eta)_+ - a_hi (eta - y)_+ with eta held fixed. The dual form is exact with
ties in y (deaths are all -1), and an eta that misses the optimum only makes the bound more
conservative. The target y = r + gamma sum_a' pi_e(a' | s') Q_lo(s', a') carries the bound
backwards through the stay, so it holds for confounding at every decision.

All the bounds asked for (each Lambda, both sides) are trained together: one network whose output
holds a value and an eta head per bound, over shared hidden layers and the same batches
(`fit_sensitivity_bounds`), so they cost about one more Q-fit per policy, not two per Lambda.

The policy-level bound is then the FQE estimate on Q_lo (or Q_hi), with the same bootstrapped
members and patient resamples as FQE (`evaluate.evaluate_arrays`): `ope.json`'s `sensitivity`
gives, per Lambda, the interval [lower.ci_low, upper.ci_high] and the paired lower bound of the
difference against the clinician's on-policy mean.

>>> import torch
>>> lo, hi = msm_weight_range(torch.tensor([0.2, 1.0]), 2.0)
>>> [round(v, 2) for v in lo.tolist()], [round(v, 2) for v in hi.tolist()]
([0.6, 1.0], [1.8, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.fqe import FittedQ, FQEConfig, FQEData, FQESystem, QNetwork, fit_q_model
from clinical_mborl.ope.fqe_batches import member_mean

Side = Literal["lower", "upper"]
#: behaviour probabilities are floored here so that one implausible action cannot dominate the bound
MIN_BEHAVIOR_PROB = 1e-3


def msm_weight_range(p: Tensor, lam: float | Tensor) -> tuple[Tensor, Tensor]:
    """(a_lo, a_hi): the range of p / e over true propensities e whose odds differ from p's by at
    most `lam` (both 1 where p = 1)."""
    return p + (1.0 - p) / lam, p + (1.0 - p) * lam


class SensitivityFQESystem(FQESystem):
    """FQE of several marginal-sensitivity bounds in one network: for bound k = (Lambda, side) the
    outputs [M, b, 2kA : 2kA + A] are its value head and the next A its quantile head eta. Each
    bound backs up its own values; the bounds share the hidden layers and the batches."""

    lam: Tensor  # [K] each bound's Lambda
    lower: Tensor  # [K] True for a lower bound

    def __init__(self, net: QNetwork, gamma: float, scale: float, config: FQEConfig,
                 value_bounds: tuple[float, float] | None, n_actions: int,
                 bounds: Sequence[tuple[float, Side]]) -> None:
        super().__init__(net, gamma, scale, config, value_bounds)
        self.n_actions, self.n_bounds = n_actions, len(bounds)
        # built once per fit, not per batch; buffers move with the module
        self.register_buffer("lam", torch.tensor([lam for lam, _ in bounds], dtype=torch.float32), persistent=False)
        self.register_buffer("lower", torch.tensor([side == "lower" for _, side in bounds]), persistent=False)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, a, r, end, x_next, pi_next, weight, p = batch
        m, b, k, n_a = self.net.n_members, x.shape[0], self.n_bounds, self.n_actions
        with torch.no_grad():
            q_next = self.target(x_next).view(m, b, k, 2, n_a)[..., 0, :]
        y = self.backup(r[:, None], end[:, None], q_next, pi_next[:, None, :])  # [M, b, K]
        picked = self.net(x).view(m, b, k, 2, n_a).gather(4, a.view(1, b, 1, 1, 1).expand(m, b, k, 2, 1))
        q, eta = picked[..., 0, 0], picked[..., 1, 0]  # [M, b, K]: the value and eta heads at a
        lower = self.lower
        a_lo, a_hi = msm_weight_range(p.clamp(MIN_BEHAVIOR_PROB, 1.0)[:, None], self.lam)  # [b, K]
        above, below = torch.where(lower, a_lo, a_hi), torch.where(lower, a_hi, a_lo)
        z = eta + above * F.relu(y - eta) - below * F.relu(eta - y)  # each bound's objective at eta
        eta_loss = torch.where(lower, -z, z)  # a lower bound maximises over eta, an upper one minimises
        return (member_mean(weight, ((q - z.detach()) ** 2).sum(-1)) + member_mean(weight, eta_loss.sum(-1))).sum()


def fit_sensitivity_bounds(data: FQEData, n_actions: int, gamma: float, horizon: int,
                           bounds: Sequence[tuple[float, Side]], config: FQEConfig | None = None,
                           value_bounds: tuple[float, float] | None = None) -> list[FittedQ]:
    """Train the Q-models of the marginal-sensitivity `bounds` ((Lambda >= 1, "lower" | "upper")
    each) in one network on `data`, which must carry `behavior_prob` (pi_b of each row's action);
    one `FittedQ` per bound, in their order, whose `q_values` are the bound's Q."""
    config = config or FQEConfig()
    bounds = list(bounds)
    if not bounds:
        raise InputError("sensitivity: expected at least one (Lambda, side) bound, got none.")
    for lam, side in bounds:
        if not lam >= 1.0:
            raise InputError(f"sensitivity: Lambda must be >= 1 (1 = no unobserved confounding), got {lam}.")
        if side not in ("lower", "upper"):
            raise InputError(f"sensitivity: side must be 'lower' or 'upper', got {side!r}.")
    if data.behavior_prob is None:
        raise InputError("sensitivity: the FQE data carry no behaviour probabilities (behavior_prob); "
                         "the bound needs pi_b(a | s) of every fitted row.")
    p = np.asarray(data.behavior_prob, dtype=np.float64)
    if p.shape != data.actions.shape or not ((p > 0) & (p <= 1)).all():
        raise InputError("sensitivity: behavior_prob must hold one probability in (0, 1] per row.")
    return fit_q_model(data, n_actions, 2 * n_actions * len(bounds), horizon, config, value_bounds,
                       lambda net, scale, clamp: SensitivityFQESystem(net, gamma, scale, config, clamp,
                                                                      n_actions, bounds),
                       head_offsets=[2 * k * n_actions for k in range(len(bounds))])


def fit_sensitivity_fqe(data: FQEData, n_actions: int, gamma: float, horizon: int, lam: float, side: Side,
                        config: FQEConfig | None = None,
                        value_bounds: tuple[float, float] | None = None) -> FittedQ:
    """The Q-model of one bound (`fit_sensitivity_bounds` with the single bound (`lam`, `side`))."""
    return fit_sensitivity_bounds(data, n_actions, gamma, horizon, [(lam, side)], config, value_bounds)[0]
