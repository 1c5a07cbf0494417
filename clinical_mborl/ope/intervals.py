"""Patient-level bootstrap intervals: percentile, BCa, and the paired difference.

The resampling unit is the patient: all stays of a patient move together. A set of B resamples
is a count matrix C [B, P] (how often each patient is drawn; rows sum to P). Every estimator in
`estimators.py` is a function f of patient-level sums S [P, K], so the B bootstrap replicates
are f(C @ S): one matrix product, every self-normalising denominator recomputed per resample.
C is regenerated chunk by chunk from a seed (`ResamplePlan`), so it is never held whole and
every estimator -- and the paired difference against the clinician -- sees the same resamples.

Nuisance models (the Q-model behind DR, WDR and FQE) are cross-fitted by patient folds: each
patient's Q-values come from a model that never saw that patient. With one Q-model, resamples
keep it fixed (no refit per resample); with M refitted members (bootstrapped FQE,
`OPEData.q_sa_members`) resample b uses member b mod M, each refitted on its own patient
resample of the fit data. The behaviour model is cross-fitted the same way upstream.

>>> import numpy as np
>>> from clinical_mborl.ope.data import OPEData
>>> from clinical_mborl.ope.estimators import OnPolicyValue
>>> rng = np.random.default_rng(0)
>>> d = OPEData.create(rng.normal(size=(200, 1)), np.ones((200, 1), bool), np.arange(200),
...                    pb=np.ones((200, 1)), pe=np.ones((200, 1)), gamma=1.0)
>>> iv = bootstrap_interval(OnPolicyValue(), d, ResamplePlan(200, 500, seed=1))
>>> iv.low < iv.value < iv.high
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.estimators import Estimator

Method = Literal["percentile", "bca"]


@dataclass(frozen=True)
class ResamplePlan:
    """B patient resamples, reproducible from `seed`, generated `chunk_size` rows at a time.

    >>> ResamplePlan(n_patients=4, n_resamples=3, seed=0).counts().sum(axis=1).tolist()
    [4, 4, 4]
    """

    n_patients: int
    n_resamples: int = 2000
    seed: int = 0
    chunk_size: int = 256

    def __post_init__(self) -> None:
        if self.n_patients < 2 or self.n_resamples < 1 or self.chunk_size < 1:
            raise InputError(f"bootstrap: expected >= 2 patients and >= 1 resample, got "
                             f"{self.n_patients} patients, {self.n_resamples} resamples.")

    def chunks(self) -> Iterator[np.ndarray]:
        """Yield int64 count matrices [b, P], b <= chunk_size, in a fixed order."""
        p, b_total, size = self.n_patients, self.n_resamples, self.chunk_size
        n_chunks = -(-b_total // size)
        for i, seq in enumerate(np.random.SeedSequence(self.seed).spawn(n_chunks)):
            b = min(size, b_total - i * size)
            draws = np.random.default_rng(seq).integers(0, p, size=(b, p))
            draws += np.arange(b)[:, None] * p
            yield np.bincount(draws.ravel(), minlength=b * p).reshape(b, p)

    def counts(self) -> np.ndarray:
        """The whole count matrix [B, P] (for tests and reference loops)."""
        return np.concatenate(list(self.chunks()))


def bootstrap_sums(plan: ResamplePlan, stats: np.ndarray) -> np.ndarray:
    """[B, K] sums of patient statistics [P, K] over each resample (C @ S, chunk by chunk)."""
    if stats.shape[0] != plan.n_patients:
        raise InputError(f"bootstrap: statistics for {stats.shape[0]} patients, plan for {plan.n_patients}.")
    return np.concatenate([c.astype(np.float64) @ stats for c in plan.chunks()])


def jackknife_sums(stats: np.ndarray) -> np.ndarray:
    """[P, K] sums with one patient left out each time (for the BCa acceleration)."""
    return stats.sum(axis=0) - stats


@dataclass(frozen=True)
class Interval:
    """A point estimate, its two-sided interval and its one-sided lower bound.

    `lower_bound` is the one-sided bound at confidence `level` (e.g. the 5% bootstrap
    quantile, BCa-adjusted, for level 0.95); `n_undefined` counts resamples whose estimate was
    undefined (no importance weight left) and were dropped.

    Guarantees, whatever the estimator: every number lies in the return range (estimates are
    projected onto it: `value_projected`, `n_projected` resamples), and
    low <= lower_bound <= value <= high. When the bootstrap quantiles alone would break that order
    (a bootstrap distribution shifted off its own estimate), the interval is widened to restore
    it, never narrowed, and `extended` is True.
    """

    value: float
    low: float
    high: float
    lower_bound: float
    level: float
    method: Literal["percentile", "bca", "rubin"]  # rubin: `ope.members`, no resamples
    n_resamples: int
    n_undefined: int
    n_projected: int = 0
    value_projected: bool = False
    extended: bool = False


def percentile_interval(boot: np.ndarray, level: float) -> tuple[float, float, float]:
    """(low, high, one-sided lower) quantiles of the bootstrap replicates.

    >>> [round(x, 6) for x in percentile_interval(np.arange(101.0), 0.90)]
    [5.0, 95.0, 10.0]
    """
    _check_level(level)
    alpha = 1.0 - level
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return (np.nan, np.nan, np.nan)
    lo, hi, lower = np.quantile(finite, [alpha / 2, 1 - alpha / 2, alpha])
    return float(lo), float(hi), float(lower)


def bca_levels(boot: np.ndarray, value: float, jack: np.ndarray, level: float) -> np.ndarray | None:
    """The BCa-adjusted tail probabilities of (low, high, one-sided lower); None if undefined.

    Bias correction z0 = Phi^-1(share of replicates below the estimate, ties counted half);
    acceleration a = sum(d^3) / (6 (sum d^2)^1.5), d = mean(jack) - jack, from the
    leave-one-patient-out estimates `jack`. Each nominal tail alpha becomes
    Phi(z0 + (z0 + z_alpha) / (1 - a (z0 + z_alpha))).
    """
    _check_level(level)
    finite = boot[np.isfinite(boot)]
    if finite.size == 0 or not np.isfinite(value):
        return None
    b = finite.size
    share = (np.sum(finite < value) + 0.5 * np.sum(finite == value)) / b
    z0 = norm.ppf(np.clip(share, 0.5 / b, 1 - 0.5 / b))
    jack = jack[np.isfinite(jack)]
    d = jack.mean() - jack if jack.size else np.zeros(1)
    ss = float(np.sum(d**2))
    a = float(np.sum(d**3)) / (6.0 * ss**1.5) if ss > 0 else 0.0
    alpha = 1.0 - level
    tails = np.array([alpha / 2, 1 - alpha / 2, alpha])
    z = norm.ppf(tails)
    denom = 1.0 - a * (z0 + z)
    return np.where(denom > 0, norm.cdf(z0 + (z0 + z) / np.where(denom > 0, denom, 1.0)), tails)


def bca_interval(boot: np.ndarray, value: float, jack: np.ndarray, level: float) -> tuple[float, float, float]:
    """Bias-corrected and accelerated interval (Efron, 1987): (low, high, one-sided lower), the
    quantiles of `boot` at `bca_levels`."""
    levels = bca_levels(boot, value, jack, level)
    if levels is None:
        return (np.nan, np.nan, np.nan)
    lo, hi, lower = np.quantile(boot[np.isfinite(boot)], levels)
    return float(lo), float(hi), float(lower)


def summarise(value: float, boot: np.ndarray, jack: np.ndarray, level: float, method: Method,
              n_projected: int = 0, value_projected: bool = False,
              raw: tuple[float, np.ndarray, np.ndarray] | None = None,
              bounds: tuple[float, float] | None = None) -> Interval:
    """Turn replicates (and jackknife values for BCa) into an `Interval` ordered
    low <= lower_bound <= value <= high (widened where the quantiles are not; see `Interval`).

    `raw`: the (value, boot, jack) before projection onto the return range, when anything moved.
    BCa then takes its bias correction and acceleration from them, on the estimator's own scale.
    With `bounds` (an estimate's interval) the interval is the unprojected one cut to the range, so
    projecting costs no coverage: the truth is inside the range. Without (a paired difference of
    projected estimates, `boot`), the quantiles are taken of `boot` at those levels.
    """
    raw_value, raw_boot, raw_jack = raw if raw is not None else (value, boot, jack)
    source = raw_boot if bounds is not None else boot
    if method == "percentile":
        lo, hi, lower = percentile_interval(source, level)
    elif method == "bca":
        levels = bca_levels(raw_boot, raw_value, raw_jack, level)
        finite = source[np.isfinite(source)]
        lo, hi, lower = (np.nan,) * 3 if levels is None or finite.size == 0 else np.quantile(finite, levels)
    else:
        raise InputError(f"bootstrap method: expected 'percentile' or 'bca', got {method!r}.")
    if bounds is not None:
        lo, hi, lower = (float(np.clip(x, *bounds)) for x in (lo, hi, lower))
    extended = False
    if all(np.isfinite(x) for x in (value, lo, hi, lower)):
        ordered = (min(lo, lower, value), max(hi, value), min(lower, value))
        extended = ordered != (lo, hi, lower)
        lo, hi, lower = ordered
    return Interval(float(value), float(lo), float(hi), float(lower), level, method, int(boot.size),
                    int(np.sum(~np.isfinite(boot))), n_projected, value_projected, extended)


@dataclass(frozen=True)
class Replicates:
    """An estimate on the full data, on each resample [B], and leaving out each patient [P],
    projected onto the return range, with how many resamples (and whether the estimate itself)
    were moved, and the unprojected numbers (`raw`, for BCa's corrections; None: nothing moved)."""

    value: float
    boot: np.ndarray
    jack: np.ndarray
    n_projected: int = 0
    value_projected: bool = False
    raw: tuple[float, np.ndarray, np.ndarray] | None = None
    #: the return range an estimate was projected onto (None for a difference of two estimates).
    bounds: tuple[float, float] | None = None

    @classmethod
    def of(cls, estimator: Estimator, total: np.ndarray, boot: np.ndarray, jack: np.ndarray,
           bounds: tuple[float, float]) -> Replicates:
        """The estimator's replicates from column sums: total [K], boot [B, K], jack [P, K]."""
        raw = (float(estimator.value_from_sums(total)), estimator.value_from_sums(boot),
               estimator.value_from_sums(jack))
        value, b, j = (np.clip(x, *bounds) for x in raw)
        moved = [np.asarray((x < bounds[0]) | (x > bounds[1])) for x in raw]
        anything = any(bool(m.any()) for m in moved)
        return cls(float(value), b, j, int(moved[1].sum()), bool(moved[0]), raw if anything else None, bounds)

    def _raw(self) -> tuple[float, np.ndarray, np.ndarray]:
        return self.raw if self.raw is not None else (self.value, self.boot, self.jack)

    def minus(self, other: Replicates) -> Replicates:
        """Replicates of self - other (same resamples); projections counted on this side."""
        raw = None
        if self.raw is not None or other.raw is not None:
            (v1, b1, j1), (v2, b2, j2) = self._raw(), other._raw()
            raw = (v1 - v2, b1 - b2, j1 - j2)
        return Replicates(self.value - other.value, self.boot - other.boot, self.jack - other.jack,
                          self.n_projected, self.value_projected, raw)

    def summarise(self, level: float = 0.95, method: Method = "bca") -> Interval:
        return summarise(self.value, self.boot, self.jack, level, method, self.n_projected, self.value_projected,
                         self.raw, self.bounds)


def member_bootstrap_sums(plan: ResamplePlan, n_members: int,
                          member_stats: Callable[[int], np.ndarray]) -> np.ndarray:
    """[B, K] sums where resample b sums member (b mod M)'s patient statistics [P, K]
    (`member_stats(m)`), in one pass over the count matrix."""
    stats = [member_stats(m) for m in range(n_members)]
    out, start = [], 0
    for counts in plan.chunks():
        member_of = (start + np.arange(len(counts))) % n_members
        block = np.empty((len(counts), stats[0].shape[1]))
        for m in range(n_members):
            rows = member_of == m
            block[rows] = counts[rows].astype(np.float64) @ stats[m]
        out.append(block)
        start += len(counts)
    return np.concatenate(out)


def pair_q_members(boot: np.ndarray, data: OPEData, plan: ResamplePlan,
                   parts: list[tuple[Estimator, int, int]]) -> np.ndarray:
    """Bootstrapped FQE: overwrite, in `boot` [B, K], the columns [start, end) of every Q-based
    estimator in `parts` so that resample b is evaluated with Q-model member b mod M (each member
    refitted on its own patient resample of the fit data). A no-op without members."""
    refitted = [(e, a, b) for e, a, b in parts if e.uses_q]
    if not data.n_q_members or not refitted:
        return boot
    cols = np.concatenate([np.arange(a, b) for _, a, b in refitted])
    boot[:, cols] = member_bootstrap_sums(plan, data.n_q_members, lambda m: np.concatenate(
        [e.patient_stats(data.with_q_member(m)) for e, _, _ in refitted], axis=1))
    return boot


def replicates(estimator: Estimator, data: OPEData, plan: ResamplePlan) -> Replicates:
    """Bootstrap and jackknife replicates of one estimator (self-normalisation recomputed)."""
    stats = estimator.patient_stats(data)
    boot = pair_q_members(bootstrap_sums(plan, stats), data, plan, [(estimator, 0, stats.shape[1])])
    return Replicates.of(estimator, stats.sum(axis=0), boot, jackknife_sums(stats), data.return_bounds)


def paired_replicates(estimator: Estimator, reference: Estimator, data: OPEData, plan: ResamplePlan) -> Replicates:
    """Replicates of V_estimator - V_reference, both on the same resamples and jackknife sets."""
    s1, s2 = estimator.patient_stats(data), reference.patient_stats(data)
    k = s1.shape[1]
    stats = np.concatenate([s1, s2], axis=1)
    boot = pair_q_members(bootstrap_sums(plan, stats), data, plan,
                          [(estimator, 0, k), (reference, k, stats.shape[1])])
    total, jack = stats.sum(axis=0), jackknife_sums(stats)
    ours = Replicates.of(estimator, total[:k], boot[:, :k], jack[:, :k], data.return_bounds)
    theirs = Replicates.of(reference, total[k:], boot[:, k:], jack[:, k:], data.return_bounds)
    return ours.minus(theirs)


def bootstrap_interval(
    estimator: Estimator, data: OPEData, plan: ResamplePlan, level: float = 0.95, method: Method = "bca"
) -> Interval:
    """Patient bootstrap interval of one estimator."""
    return replicates(estimator, data, plan).summarise(level, method)


def paired_difference(
    estimator: Estimator,
    reference: Estimator,
    data: OPEData,
    plan: ResamplePlan,
    level: float = 0.95,
    method: Method = "bca",
) -> Interval:
    """Interval of V_estimator - V_reference on the same resamples (reference: usually the
    clinician's on-policy value, `OnPolicyValue()`)."""
    return paired_replicates(estimator, reference, data, plan).summarise(level, method)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InputError(f"interval level: expected 0 < level < 1, got {level}.")


def bootstrap_all(
    estimators: list[Estimator],
    reference: Estimator,
    data: OPEData,
    plan: ResamplePlan,
    level: float = 0.95,
    method: Method = "bca",
) -> tuple[Interval, dict[str, Interval], dict[str, Interval]]:
    """One pass over the resamples for the reference, every estimator, and each difference.

    Returns (reference interval, {name: interval}, {name: interval of name - reference}); the
    same as calling `bootstrap_interval` and `paired_difference` for each, but the count
    matrix is generated and multiplied once.
    """
    everyone = (reference, *estimators)
    blocks = [e.patient_stats(data) for e in everyone]
    edges = np.cumsum([0] + [b.shape[1] for b in blocks])
    stats = np.concatenate(blocks, axis=1)
    total, boot, jack = stats.sum(axis=0), bootstrap_sums(plan, stats), jackknife_sums(stats)
    pair_q_members(boot, data, plan, [(e, int(edges[j]), int(edges[j + 1])) for j, e in enumerate(everyone)])

    def rep(j: int) -> Replicates:
        cols = slice(edges[j], edges[j + 1])
        return Replicates.of(everyone[j], total[cols], boot[:, cols], jack[:, cols], data.return_bounds)

    ref = rep(0)
    intervals, differences = {}, {}
    for j, e in enumerate(estimators, start=1):
        r = rep(j)
        intervals[e.name] = r.summarise(level, method)
        differences[e.name] = r.minus(ref).summarise(level, method)
    return ref.summarise(level, method), intervals, differences
