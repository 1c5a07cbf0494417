"""Intervals for bootstrapped FQE by Rubin's rules: M refitted Q-models as M imputations.

Bootstrapped FQE (`ope.fqe`) fits M Q-models, each on its own Bayesian-bootstrap resample of the
fit patients: M draws of the Q-function given the fit data. The patient bootstrap of `intervals`
pairs resample b with member b mod M, so the Q-fitting part of its width rests on M = 5 values,
and a percentile of that mixture treats a spread estimated from five draws as known. With a
spread known only to 4 degrees of freedom, +-1.96 of it covers ~88%, not 95% (a t_4 variable).

Rubin's rules (Rubin 1987) combine M imputations with their within-imputation variances and
take the between-imputation variance as estimated, with a t reference distribution:

    theta_m  member m's estimate on the evaluation patients        point  Q = mean_m theta_m
    W        mean_m of member m's sampling variance (jackknife over evaluation patients)
    B        sample variance of the theta_m (ddof 1)               T = W + (1 + 1/M) B
    nu       Barnard & Rubin (1999) degrees of freedom, with the complete-data nu_com = P - 1
    interval Q -+ t_nu(1 - alpha/2) sqrt(T);  one-sided lower bound Q - t_nu(level) sqrt(T)

For the paired difference against a reference without Q-members (the clinicians' on-policy mean),
theta_m is member m's difference, and its jackknife pairs both sides patient by patient.
Value intervals are cut to the return range (the truth lies in it); the point is the bagged
estimate, projected onto the range as everywhere in `ope`.

>>> import numpy as np
>>> iv = rubin_interval(np.array([0.40, 0.45, 0.50, 0.42, 0.48]), np.full(5, 0.02**2), n_patients=500)
>>> round(iv.value, 3), bool(iv.low < iv.lower_bound < iv.value < iv.high), round(iv.dof, 1)
(0.45, True, 5.3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from clinical_mborl.core.errors import InputError
from clinical_mborl.ope.data import OPEData
from clinical_mborl.ope.estimators import Estimator, FittedQEvaluation, OnPolicyValue
from clinical_mborl.ope.intervals import Interval, jackknife_sums

RUBIN_SCOPE = ("Rubin's rules over {m} Q-models, each refitted on its own patient bootstrap resample of the fit "
               "patients from its own initialisation: between-model variance (t reference, Barnard-Rubin degrees "
               "of freedom) plus each model's sampling variance over the evaluation patients; Q-fitting "
               "variability is in the interval, Q-model bias is not")


@dataclass(frozen=True)
class MemberInterval:
    """A Rubin's-rules interval: estimate, two-sided [low, high], one-sided lower bound, and the
    parts (within- and between-member variance, degrees of freedom)."""

    value: float
    low: float
    high: float
    lower_bound: float
    level: float
    within: float
    between: float
    dof: float
    n_members: int
    value_projected: bool = False


def barnard_rubin_dof(within: float, between: float, n_members: int, n_patients: int) -> float:
    """Degrees of freedom of Rubin's t reference (Barnard & Rubin 1999, small-sample form).

    >>> round(barnard_rubin_dof(0.0, 1.0, 5, 10**9), 6)  # all variance between members: M - 1
    4.0
    >>> round(barnard_rubin_dof(1.0, 0.0, 5, 500), 2)  # none between: the complete-data 499, shrunk
    497.01
    >>> round(barnard_rubin_dof(1.0, 1e-300, 5, 500), 2)  # a share whose square underflows: the same
    497.01
    """
    m = n_members
    total = within + (1 + 1 / m) * between
    if total <= 0:
        return float(n_patients - 1)
    share = (1 + 1 / m) * between / total  # fraction of missing information
    nu_com = n_patients - 1
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - share)
    inv_old = share**2 / (m - 1)  # 1 / nu_old; 0 when the share is 0 or its square underflows
    if nu_obs <= 0:  # all information missing (share 1): nu_old alone
        return float(1 / inv_old)
    return float(1 / (inv_old + 1 / nu_obs))


def rubin_interval(member_values: np.ndarray, member_variances: np.ndarray, n_patients: int,
                   level: float = 0.95, bounds: tuple[float, float] | None = None) -> MemberInterval:
    """Combine M member estimates and their sampling variances by Rubin's rules (module text)."""
    theta = np.asarray(member_values, dtype=np.float64)
    var = np.asarray(member_variances, dtype=np.float64)
    m = theta.size
    if m < 2 or var.shape != theta.shape:
        raise InputError(f"Rubin's rules: expected >= 2 member estimates with one variance each, got {m} "
                         f"estimates and {var.size} variances.")
    if not 0.0 < level < 1.0:
        raise InputError(f"interval level: expected 0 < level < 1, got {level}.")
    within, between = float(var.mean()), float(theta.var(ddof=1))
    dof = barnard_rubin_dof(within, between, m, n_patients)
    se = float(np.sqrt(within + (1 + 1 / m) * between))
    value = float(theta.mean())
    half, one_sided = student_t.ppf(0.5 + level / 2, dof) * se, student_t.ppf(level, dof) * se
    low, high, lower = value - half, value + half, value - one_sided
    projected = False
    if bounds is not None:
        projected = not bounds[0] <= value <= bounds[1]
        value, low, high, lower = (float(np.clip(x, *bounds)) for x in (value, low, high, lower))
    return MemberInterval(value, low, high, lower, level, within, between, dof, m, projected)


def _jackknife_variance(leave_one_out: np.ndarray) -> float:
    p = leave_one_out.size
    return float((p - 1) / p * np.sum((leave_one_out - leave_one_out.mean()) ** 2))


def member_intervals(estimator: Estimator, data: OPEData, level: float = 0.95,
                     reference: Estimator | None = None, episodes: np.ndarray | None = None,
                     ) -> tuple[MemberInterval, MemberInterval | None]:
    """Rubin's-rules intervals of a Q-based estimator over the data's refitted Q-members: of its
    value, and (with `reference`, e.g. `OnPolicyValue()`) of its difference to the reference.

    `episodes` (bool per episode): restrict to these stays (a subgroup, as `ope.subgroups` does:
    statistics outside it are zero, and the jackknife runs over the patients with a stay in it)."""
    if not estimator.uses_q or data.n_q_members < 2:
        raise InputError(f"Rubin's rules: {estimator.name} needs >= 2 refitted Q-members in the OPE data "
                         f"(FQEConfig.n_members), got {data.n_q_members}.")
    keep = np.ones(data.n_episodes, bool) if episodes is None else np.asarray(episodes, bool)
    patients = np.unique(data.patient[keep])
    if patients.size < 2:
        raise InputError(f"Rubin's rules: expected stays of >= 2 patients, got {patients.size}.")

    def stats(est: Estimator, d: OPEData) -> np.ndarray:
        return d.patient_sums(est.episode_stats(d) * keep[:, None])[patients]

    ref_value, ref_jack = 0.0, None  # the reference has no members: computed once
    if reference is not None:
        ref = stats(reference, data)
        ref_value, ref_jack = float(reference.value_from_sums(ref.sum(axis=0))), reference.value_from_sums(
            jackknife_sums(ref))
    values, variances, diffs, diff_variances = [], [], [], []
    for m in range(data.n_q_members):
        ours = stats(estimator, data.with_q_member(m))
        values.append(float(estimator.value_from_sums(ours.sum(axis=0))))
        jack = estimator.value_from_sums(jackknife_sums(ours))
        variances.append(_jackknife_variance(jack))
        if ref_jack is not None:
            diffs.append(values[-1] - ref_value)
            diff_variances.append(_jackknife_variance(jack - ref_jack))
    value = rubin_interval(np.array(values), np.array(variances), int(patients.size), level, data.return_bounds)
    diff = None if ref_jack is None else rubin_interval(np.array(diffs), np.array(diff_variances),
                                                        int(patients.size), level)
    return value, diff


def as_interval(iv: MemberInterval) -> Interval:
    """The `ope.intervals.Interval` of a Rubin's-rules interval (method "rubin", no resamples)."""
    return Interval(iv.value, iv.low, iv.high, iv.lower_bound, iv.level, "rubin", 0, 0,
                    value_projected=iv.value_projected)


def rubin_fqe(data: OPEData, level: float) -> tuple[Interval, Interval, dict[str, float | int | str | None]]:
    """FQE's interval and its paired difference to the clinicians' on-policy mean by Rubin's rules,
    with the diagnostics `ope.json` shows for them (`OPEConfig.fqe_interval = "rubin"`)."""
    value, diff = member_intervals(FittedQEvaluation(), data, level, reference=OnPolicyValue())
    assert diff is not None
    return as_interval(value), as_interval(diff), {
        "interval_scope": RUBIN_SCOPE.format(m=value.n_members), "rubin_dof": value.dof,
        "between_member_sd": float(np.sqrt(value.between)), "within_member_sd": float(np.sqrt(value.within))}
