"""High-confidence off-policy lower bound (Thomas, Theocharous & Ghavamzadeh, AAAI 2015).

A concentration inequality, not a bootstrap: valid for any sample size, but wide. We use it to
confirm a bootstrap lower bound, never in its place.

Recipe:
1. Normalise each stay's discounted return to [0, 1] with a-priori return bounds:
   Gn_i = (G_i - G_min) / (G_max - G_min).
2. X_i = W_i Gn_i with the *unclipped* trajectory ratio W_i; E_b[X] = (V_e - G_min)/(G_max - G_min).
   Stays of one patient are averaged into one X_p, so the X_p are independent.
3. Truncate at c (Y_p = min(X_p, c)); truncation only lowers the mean, so the bound stays
   valid. With all thresholds equal to c, Theorem 1 of the paper reads, with probability >= 1 - delta,
       E[X] >= mean(Y) - 7 c ln(2/delta) / (3 (n - 1)) - sqrt(2 ln(2/delta) var(Y) / n),
   var the unbiased sample variance (the empirical Bernstein bound of Maurer & Pontil, 2009).
4. c is chosen on a small held-out share of patients (default 5%) by maximising the bound
   predicted for the size of the remaining patients; the bound is computed on the rest.
5. Map back: V_e >= G_min + (G_max - G_min) * max(bound, 0) (G_min itself: uninformative).
6. The inequality needs the true behaviour probabilities (E_b[W] = 1, so E[X] <= 1). With an
   estimated, over-confident clinician model the weights average far above 1 and the "bound" can
   exceed the largest possible return (seen in the simulation studies: 2,190 on a [-1, 1] scale
   at ESS ~1). Two checks follow from E_b[W] = 1: a normalised bound above 1 is impossible, and a
   mean patient weight m >= 1 / delta has probability <= 1 / m <= delta under correct weights
   (Markov's inequality; W >= 0). Either makes the result not valid: `valid` False, `lower_bound`
   = G_min (the uninformative bound), and `mean_weight` says how far off the weights are.

>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(size=2000)
>>> 0.40 < empirical_bernstein_lower(x, c=1.0, delta=0.05) < 0.5
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.data import OPEData


def empirical_bernstein_lower(x: np.ndarray, c: float, delta: float, n_effective: int | None = None) -> float:
    """Lower confidence bound on E[X] for independent X >= 0, truncated at c.

    `n_effective` replaces the sample size in the confidence terms (used to predict the bound
    on a larger sample when choosing c); by default it is len(x).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size if n_effective is None else int(n_effective)
    if x.size < 2 or n < 2:
        raise InputError(f"high-confidence bound: expected >= 2 independent patients, got {min(x.size, n)}.")
    if c <= 0 or not 0.0 < delta < 1.0:
        raise InputError(f"high-confidence bound: expected c > 0 and 0 < delta < 1, got c={c}, delta={delta}.")
    y = np.minimum(x, c)
    log_term = np.log(2.0 / delta)
    return float(y.mean() - 7.0 * c * log_term / (3.0 * (n - 1))
                 - np.sqrt(2.0 * log_term * y.var(ddof=1) / n))


@dataclass(frozen=True)
class HCOPEBound:
    """The confirmation bound on the return scale, and how it was obtained."""

    lower_bound: float
    delta: float
    threshold_c: float
    n_patients_bound: int
    n_patients_selection: int
    truncated_share: float
    valid: bool = True
    mean_weight: float | None = None


def high_confidence_lower_bound(
    data: OPEData, delta: float = 0.05, selection_fraction: float = 0.05, seed: int = 0
) -> HCOPEBound:
    """One-sided (1 - delta) lower bound on V_e from the Thomas et al. (2015) inequality.

    >>> rng = np.random.default_rng(0)
    >>> r = rng.choice([-1.0, 1.0], size=(4000, 1))
    >>> d = OPEData.create(r, np.ones((4000, 1), bool), np.arange(4000), pb=np.ones((4000, 1)),
    ...                    pe=np.ones((4000, 1)), gamma=1.0, return_bounds=(-1.0, 1.0))
    >>> b = high_confidence_lower_bound(d)
    >>> bool(-0.2 < b.lower_bound < r.mean())
    True
    """
    if not 0.0 < selection_fraction < 1.0:
        raise InputError(f"HCOPE selection_fraction: expected in (0, 1), got {selection_fraction}.")
    g_min, g_max = data.return_bounds
    normalised = (data.returns() - g_min) / (g_max - g_min)
    weight = np.cumprod(data.ratios(), axis=1)[:, -1]
    per_patient = data.patient_sums(np.stack([weight * normalised, weight, np.ones(data.n_episodes)], axis=1))
    x = per_patient[:, 0] / per_patient[:, 2]
    mean_weight = float(np.mean(per_patient[:, 1] / per_patient[:, 2]))

    order = np.random.default_rng(seed).permutation(x.size)
    n_sel = max(2, int(round(selection_fraction * x.size)))
    if x.size - n_sel < 2:
        raise InputError(f"HCOPE: expected enough patients to hold out {n_sel} for choosing c and bound "
                         f"on the rest, got {x.size}.")
    x_sel, x_bound = x[order[:n_sel]], x[order[n_sel:]]
    candidates = np.unique(np.concatenate([np.quantile(x_sel, np.linspace(0.5, 1.0, 51)), [1.0]]))
    candidates = candidates[candidates > 0]
    predicted = [empirical_bernstein_lower(x_sel, c, delta, n_effective=x_bound.size) for c in candidates]
    c_best = float(candidates[int(np.argmax(predicted))])
    bound = empirical_bernstein_lower(x_bound, c_best, delta)
    # under correct weights E[X] <= 1 and P(mean weight >= 1/delta) <= delta (Markov's inequality)
    valid = bound <= 1.0 and mean_weight < 1.0 / delta
    return HCOPEBound(
        lower_bound=float(g_min + (g_max - g_min) * max(bound, 0.0)) if valid else float(g_min),
        valid=bool(valid),
        mean_weight=mean_weight,
        delta=delta,
        threshold_c=c_best,
        n_patients_bound=int(x_bound.size),
        n_patients_selection=int(n_sel),
        truncated_share=float(np.mean(x_bound > c_best)),
    )
