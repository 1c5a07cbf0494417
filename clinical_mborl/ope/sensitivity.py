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
a_lo and a_hi in the two terms and takes the minimum. The network has a second head eta(s, a)
trained on this objective (a rescaled quantile loss), and the value head regresses
z = eta + a_lo (y - eta)_+ - a_hi (eta - y)_+ with eta held fixed. The dual form is exact with
ties in y (deaths are all -1), and an eta that misses the optimum only makes the bound more
conservative. The target y = r + gamma sum_a' pi_e(a' | s') Q_lo(s', a') carries the bound
backwards through the stay, so it holds for confounding at every decision.

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

from typing import Literal

import numpy as np
from torch import Tensor
from torch.nn import functional as F

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.fqe import (
    FittedQ,
    FQEConfig,
    FQEData,
    FQESystem,
    QNetwork,
    fit_q_model,
    member_mean,
)

Side = Literal["lower", "upper"]
#: behaviour probabilities are floored here so that one implausible action cannot dominate the bound
MIN_BEHAVIOR_PROB = 1e-3


def msm_weight_range(p: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """(a_lo, a_hi): the range of p / e over true propensities e whose odds differ from p's by at
    most `lam` (both 1 where p = 1)."""
    return p + (1.0 - p) / lam, p + (1.0 - p) * lam


class SensitivityFQESystem(FQESystem):
    """FQE of the lower (or upper) marginal-sensitivity bound: outputs [M, b, 2A], the bound's
    value head then the quantile head eta."""

    def __init__(self, net: QNetwork, gamma: float, scale: float, config: FQEConfig,
                 value_bounds: tuple[float, float] | None, n_actions: int, lam: float, side: Side) -> None:
        super().__init__(net, gamma, scale, config, value_bounds)
        self.n_actions, self.lam, self.side = n_actions, lam, side

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, a, r, end, x_next, pi_next, weight, p = batch
        y = self.bellman_target(r, end, x_next, pi_next)
        out = self.net(x)
        idx = a.expand(self.net.n_members, -1)[..., None]
        q = out[..., : self.n_actions].gather(2, idx).squeeze(-1)
        eta = out[..., self.n_actions:].gather(2, idx).squeeze(-1)
        a_lo, a_hi = msm_weight_range(p.clamp(MIN_BEHAVIOR_PROB, 1.0), self.lam)
        above, below = (a_lo, a_hi) if self.side == "lower" else (a_hi, a_lo)
        z = eta + above * F.relu(y - eta) - below * F.relu(eta - y)  # the bound's objective at eta
        eta_loss = -z if self.side == "lower" else z  # the lower bound maximises over eta
        return (member_mean(weight, (q - z.detach()) ** 2) + member_mean(weight, eta_loss)).sum()


def fit_sensitivity_fqe(data: FQEData, n_actions: int, gamma: float, horizon: int, lam: float, side: Side,
                        config: FQEConfig | None = None,
                        value_bounds: tuple[float, float] | None = None) -> FittedQ:
    """Train the Q-model of the `side` bound at sensitivity `lam` (>= 1) on `data`, which must carry
    `behavior_prob` (pi_b of each row's action); `FittedQ.q_values` returns the bound's Q."""
    config = config or FQEConfig()
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
    return fit_q_model(data, n_actions, 2 * n_actions, horizon, config, value_bounds,
                       lambda net, scale, bounds: SensitivityFQESystem(net, gamma, scale, config, bounds,
                                                                       n_actions, lam, side))
