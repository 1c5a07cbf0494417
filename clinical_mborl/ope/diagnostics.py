"""Overlap diagnostics for importance weights: what reviewers ask for before any estimate.

- Kish effective sample size ESS = (sum w)^2 / sum w^2 of the trajectory weights, with a
  patient-bootstrap interval (interval width scales as 1/sqrt(ESS), not 1/sqrt(n));
- the smallest per-decision ESS over steps;
- the largest single weight's share of the total;
- the share of stays (and of steps) whose cumulative weight hit the clipping cap;
- the share of steps where the evaluation policy recommends an action the clinician gives
  probability below a threshold (outside clinician support).

>>> kish_ess(np.array([1.0, 1.0, 1.0, 1.0])), kish_ess(np.array([1.0, 0.0, 0.0, 0.0]))
(4.0, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.intervals import ResamplePlan, bootstrap_sums, percentile_interval


def kish_ess(weights: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """(sum w)^2 / sum w^2 along `axis`; 0 where every weight is 0. In [1, n] otherwise."""
    w = np.asarray(weights, dtype=np.float64)
    top = w.max(axis=axis, keepdims=True)
    w = np.divide(w, top, out=np.zeros_like(w), where=top > 0)  # scale-free; no under/overflow
    s1, s2 = w.sum(axis=axis), (w**2).sum(axis=axis)
    out = np.divide(s1**2, s2, out=np.zeros_like(s1, dtype=np.float64), where=s2 > 0)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class WeightDiagnostics:
    """Overlap diagnostics of one (softened, clipped) evaluation policy on one data set."""

    ess: float
    ess_low: float
    ess_high: float
    ess_min_step: float
    max_weight_share: float
    clipped_share: float
    clipped_step_share: float
    support_share_outside: float | None
    n_episodes: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def weight_diagnostics(
    data: OPEData,
    clip: float | None,
    plan: ResamplePlan,
    level: float = 0.95,
    support_threshold: float = 0.01,
) -> WeightDiagnostics:
    """Diagnostics of the trajectory weights W_i = min(prod_t rho_it, clip).

    The ESS interval resamples patients with `plan` (percentile interval of the resampled
    Kish ESS), so it matches the resamples of the estimates it accompanies.

    >>> d = OPEData.create(np.zeros((4, 1)), np.ones((4, 1), bool), np.arange(4),
    ...                    pb=np.full((4, 1), 0.5), pe=np.array([[1.0], [1.0], [0.5], [0.0]]),
    ...                    gamma=1.0)
    >>> dg = weight_diagnostics(d, clip=1.5, plan=ResamplePlan(4, 50))
    >>> round(dg.ess, 3), dg.clipped_share, dg.max_weight_share
    (2.909, 0.5, 0.375)
    """
    w, clipped = data.cumulative_weights(clip)
    big_w = w[:, -1]
    scaled = big_w / big_w.max() if big_w.max() > 0 else big_w  # ESS is scale-free
    per_patient = data.patient_sums(np.stack([scaled, scaled**2], axis=1))
    boot = bootstrap_sums(plan, per_patient)
    boot_ess = np.divide(boot[:, 0] ** 2, boot[:, 1], out=np.zeros(boot.shape[0]), where=boot[:, 1] > 0)
    ess_low, ess_high, _ = percentile_interval(boot_ess, level)
    total = float(big_w.sum())
    return WeightDiagnostics(
        ess=float(kish_ess(big_w)),
        ess_low=ess_low,
        ess_high=ess_high,
        ess_min_step=float(np.min(kish_ess(w, axis=0))),
        max_weight_share=float(big_w.max() / total) if total > 0 else float("nan"),
        clipped_share=float(clipped[:, -1].mean()),
        clipped_step_share=float(clipped[data.mask].mean()),
        support_share_outside=support_share_outside(data, support_threshold),
        n_episodes=data.n_episodes,
    )


def support_share_outside(data: OPEData, threshold: float = 0.01) -> float | None:
    """Share of observed steps whose recommended action has clinician probability < threshold.

    None when the data carry no `pb_recommended` (e.g. continuous doses).

    >>> d = OPEData.create(np.zeros((1, 2)), np.ones((1, 2), bool), np.zeros(1), pb=np.ones((1, 2)),
    ...                    pe=np.ones((1, 2)), gamma=1.0, pb_recommended=np.array([[0.5, 0.001]]))
    >>> support_share_outside(d, 0.01)
    0.5
    """
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"support threshold: expected a probability in [0, 1], got {threshold}.")
    if data.pb_recommended is None:
        return None
    return float((data.pb_recommended[data.mask] < threshold).mean())
