"""Off-policy estimators, each written as a function of per-patient sums.

Every estimator here is V = f(sum_p s_p), where s_p is a short vector of statistics summed over
the stays of patient p (`episode_stats`, then `OPEData.patient_sums`). That one fact gives:

- the point estimate: f of the column totals;
- the patient bootstrap: f of count-weighted sums, one matrix product for all resamples, with
  every self-normalising denominator recomputed on each resample (`intervals.py`);
- the leave-one-patient-out jackknife for BCa: f of (total - s_p).

Notation: rho_it = pe/pb, w_it = min(prod_{k<=t} rho_ik, clip) (1 past the end of a stay),
w_i,-1 = 1, G_i = sum_t gamma^t r_it.

>>> import numpy as np
>>> from clinical_mborl.ope.data import OPEData
>>> d = OPEData.create(rewards=np.array([[1.0], [0.0]]), mask=np.ones((2, 1), bool),
...                    patient=np.arange(2), pb=np.full((2, 1), 0.5),
...                    pe=np.array([[0.9], [0.1]]), gamma=1.0)
>>> round(WeightedImportanceSampling().estimate(d), 3), OnPolicyValue().estimate(d)
(0.9, 0.5)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.data import OPEData


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den == 0 (an estimate with no weight behind it is undefined)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


class Estimator(ABC):
    """An estimator of the evaluation policy's expected discounted return.

    Subclasses give `episode_stats` ([E, K] per stay) and `value_from_sums` (maps [..., K]
    sums over patients to values [...]); `estimate` is the composition.
    """

    name: ClassVar[str]
    #: whether the estimator reweights by importance ratios (ESS and clipping apply).
    uses_weights: ClassVar[bool] = True
    #: whether the estimator reads the Q-model (q_sa, v_s): refitted members then enter its bootstrap.
    uses_q: ClassVar[bool] = False

    @abstractmethod
    def episode_stats(self, data: OPEData) -> np.ndarray:
        """[E, K] additive statistics of each stay."""

    @abstractmethod
    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        """Map sums over (resampled) patients [..., K] to estimates [...]."""

    def patient_stats(self, data: OPEData) -> np.ndarray:
        """[P, K] statistics summed over each patient's stays."""
        return data.patient_sums(self.episode_stats(data))

    def bounded_values(self, sums: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        """`value_from_sums` projected onto the return range [G_min, G_max] (NaN stays NaN).

        Every policy's true value lies in that range, so the projection never moves an estimate
        away from the truth; DR and per-decision WIS at low ESS can otherwise land orders of
        magnitude outside it. Intervals count the projected resamples (`intervals.Interval`).
        """
        return np.clip(self.value_from_sums(sums), bounds[0], bounds[1])

    def estimate(self, data: OPEData) -> float:
        """The point estimate on the whole data set, projected onto `data.return_bounds` (NaN if
        no weight is left)."""
        return float(self.bounded_values(self.episode_stats(data).sum(axis=0), data.return_bounds))


@dataclass(frozen=True)
class OnPolicyValue(Estimator):
    """The clinician's value: the mean observed discounted return, (1/n) sum_i G_i."""

    name: ClassVar[str] = "clinician"
    uses_weights: ClassVar[bool] = False

    def episode_stats(self, data: OPEData) -> np.ndarray:
        return np.stack([data.returns(), np.ones(data.n_episodes)], axis=1)

    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        return ratio(sums[..., 0], sums[..., 1])


@dataclass(frozen=True)
class WeightedImportanceSampling(Estimator):
    """Trajectory-wise weighted IS: sum_i W_i G_i / sum_i W_i with W_i = w_i,T-1.

    Always inside the range of the observed returns; biased towards the clinician at low ESS.

    Attributes:
        clip: cap on the cumulative ratio (None: no cap).
    """

    clip: float | None = None
    name: ClassVar[str] = "wis"

    def episode_stats(self, data: OPEData) -> np.ndarray:
        w, _ = data.cumulative_weights(self.clip)
        big_w = w[:, -1]
        return np.stack([big_w * data.returns(), big_w], axis=1)

    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        return ratio(sums[..., 0], sums[..., 1])


@dataclass(frozen=True)
class PerDecisionWIS(Estimator):
    """Per-decision WIS (Precup et al., 2000): sum_t gamma^t sum_i w_it r_it / sum_i w_it.

    The reward at step t is weighted only by the ratios up to t, so it holds more effective
    sample size than trajectory WIS on long stays.
    """

    clip: float | None = None
    name: ClassVar[str] = "pdwis"

    def episode_stats(self, data: OPEData) -> np.ndarray:
        w, _ = data.cumulative_weights(self.clip)
        return np.concatenate([w * data.rewards * data.discounts, w], axis=1)

    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        t = sums.shape[-1] // 2
        return ratio(sums[..., :t], sums[..., t:]).sum(axis=-1)


def _q_values(data: OPEData, who: str) -> tuple[np.ndarray, np.ndarray]:
    if data.q_sa is None or data.v_s is None:
        raise InputError(f"{who}: expected Q-model values (q_sa, v_s) in the OPE data; fit a "
                         "FittedQEvaluation model first (cross-fitted by patient folds).")
    return data.q_sa, data.v_s


@dataclass(frozen=True)
class DoublyRobust(Estimator):
    """Per-decision doubly robust (Jiang & Li, ICML 2016).

    V = (1/n) sum_i sum_t gamma^t [ w_it (r_it - Q(s_it, a_it)) + w_i,t-1 V(s_it) ].
    Unbiased if the ratios are exact; with an exact Q on deterministic dynamics every stay
    returns V(s_0) exactly.
    """

    clip: float | None = None
    name: ClassVar[str] = "dr"
    uses_q: ClassVar[bool] = True

    def episode_stats(self, data: OPEData) -> np.ndarray:
        q, v = _q_values(data, "DoublyRobust")
        w, _ = data.cumulative_weights(self.clip)
        w_prev = np.concatenate([np.ones((data.n_episodes, 1)), w[:, :-1]], axis=1)
        per_stay = (data.discounts * (w * (data.rewards - q) + w_prev * v)).sum(axis=1)
        return np.stack([per_stay, np.ones(data.n_episodes)], axis=1)

    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        return ratio(sums[..., 0], sums[..., 1])


@dataclass(frozen=True)
class WeightedDoublyRobust(Estimator):
    """Weighted doubly robust (Thomas & Brunskill, ICML 2016): DR with each step's weights
    normalised over stays,

    V = sum_t gamma^t [ sum_i w_it (r_it - Q_it) / sum_i w_it + sum_i w_i,t-1 V_it / sum_i w_i,t-1 ].
    """

    clip: float | None = None
    name: ClassVar[str] = "wdr"
    uses_q: ClassVar[bool] = True

    def episode_stats(self, data: OPEData) -> np.ndarray:
        q, v = _q_values(data, "WeightedDoublyRobust")
        w, _ = data.cumulative_weights(self.clip)
        w_prev = np.concatenate([np.ones((data.n_episodes, 1)), w[:, :-1]], axis=1)
        disc = data.discounts
        return np.concatenate([disc * w * (data.rewards - q), w, disc * w_prev * v, w_prev], axis=1)

    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        t = sums.shape[-1] // 4
        a, b, c, d = (sums[..., k * t:(k + 1) * t] for k in range(4))
        return (ratio(a, b) + ratio(c, d)).sum(axis=-1)


@dataclass(frozen=True)
class FittedQEvaluation(Estimator):
    """Direct method with a fitted Q-model (Le et al., ICML 2019): (1/n) sum_i V(s_i0).

    The Q-model is trained by `clinical_mborl.ope.fqe`; here it is read from `data.v_s`.
    """

    name: ClassVar[str] = "fqe"
    uses_q: ClassVar[bool] = True
    uses_weights: ClassVar[bool] = False

    def episode_stats(self, data: OPEData) -> np.ndarray:
        _, v = _q_values(data, "FittedQEvaluation")
        return np.stack([v[:, 0], np.ones(data.n_episodes)], axis=1)

    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        return ratio(sums[..., 0], sums[..., 1])


@dataclass(frozen=True)
class ModelBasedEstimate(Estimator):
    """Mean return of rollouts in the learned dynamics from each stay's initial state."""

    name: ClassVar[str] = "model_based"
    uses_weights: ClassVar[bool] = False

    def episode_stats(self, data: OPEData) -> np.ndarray:
        if data.model_returns is None:
            raise InputError("ModelBasedEstimate: expected model_returns in the OPE data; roll the "
                             "policy out in the dynamics ensemble first.")
        return np.stack([data.model_returns, np.ones(data.n_episodes)], axis=1)

    def value_from_sums(self, sums: np.ndarray) -> np.ndarray:
        return ratio(sums[..., 0], sums[..., 1])


ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls
    for cls in (WeightedImportanceSampling, PerDecisionWIS, DoublyRobust, WeightedDoublyRobust,
                FittedQEvaluation, ModelBasedEstimate)
}


def make_estimator(name: str, clip: float | None = None) -> Estimator:
    """Build an estimator by its short name ("wis", "pdwis", "dr", "wdr", "fqe", "model_based").

    >>> make_estimator("wdr", clip=100.0)
    WeightedDoublyRobust(clip=100.0)
    """
    if name not in ESTIMATORS:
        raise InputError(f"unknown OPE estimator {name!r}; expected one of {sorted(ESTIMATORS)}.")
    cls = ESTIMATORS[name]
    return cls(clip=clip) if cls.uses_weights else cls()  # type: ignore[call-arg]
