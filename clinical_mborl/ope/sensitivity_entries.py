"""Sensitivity bounds as flat entries, the form study records and score tables use.

An entry holds the interval at Lambda ([lower.ci_low, upper.ci_high]), the lower bound's one-sided
bounds and the paired differences against the clinician, under the name `sensitivity_name(Lambda)`
next to FQE's own entry. The bounds are noisy fits, so `nest_sensitivity` makes the intervals
nested in Lambda before anyone reads them.
"""

from __future__ import annotations

from typing import Any

from clinical_mborl.ope.results import SensitivityBound


def sensitivity_name(lam: float) -> str:
    """The record's estimator name of FQE's marginal-sensitivity interval at `lam`.

    >>> sensitivity_name(1.5), sensitivity_name(2.0)
    ('fqe_msm1.5', 'fqe_msm2')
    """
    return f"fqe_msm{lam:g}"


def _mid(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else 0.5 * (a + b)


def sensitivity_entry(sb: SensitivityBound) -> dict[str, Any]:
    """A sensitivity bound as one record entry: the interval [lower.ci_low, upper.ci_high], the lower
    bound's one-sided bounds, and the midpoint of the two bounds as the value."""
    lo, hi, dlo, dhi = sb.lower, sb.upper, sb.lower_difference, sb.upper_difference
    return {"value": _mid(lo.value, hi.value), "ci_low": lo.ci_low, "ci_high": hi.ci_high,
            "lower_bound": lo.lower_bound, "ess": None, "lower_value": lo.value, "upper_value": hi.value,
            "n_undefined": max(lo.diagnostics.get("n_undefined_resamples") or 0,  # type: ignore[type-var]
                               hi.diagnostics.get("n_undefined_resamples") or 0),
            "diff": _mid(dlo.value, dhi.value), "diff_ci_low": dlo.ci_low, "diff_ci_high": dhi.ci_high,
            "diff_lower_bound": dlo.lower_bound,
            "diff_n_undefined": max(dlo.n_undefined_resamples, dhi.n_undefined_resamples)}


def nest_sensitivity(estimates: dict[str, Any], lambdas: tuple[float, ...]) -> None:
    """Make the sensitivity intervals nested: the interval at Lambda becomes the hull of FQE's (Lambda
    = 1) and of every bound fitted up to Lambda, as the set of confounders it allows contains theirs.
    The bounds are noisy fits (one Q-network's heads), so a raw bound can fall inside a
    smaller Lambda's interval.

    >>> est = {"fqe": {"ci_low": 0.3, "ci_high": 0.5, "lower_bound": 0.32, "diff_ci_low": -0.2,
    ...                "diff_ci_high": 0.0, "diff_lower_bound": -0.18},
    ...        "fqe_msm1.5": {"ci_low": 0.35, "ci_high": 0.6, "lower_bound": 0.36, "diff_ci_low": -0.1,
    ...                       "diff_ci_high": 0.1, "diff_lower_bound": -0.25}}
    >>> nest_sensitivity(est, (1.5,)); [est["fqe_msm1.5"][k] for k in ("ci_low", "lower_bound", "diff_lower_bound")]
    [0.3, 0.32, -0.25]
    """
    inner = estimates.get("fqe")
    for lam in sorted(lambdas):
        entry = estimates.get(sensitivity_name(lam))
        if inner is None or entry is None:
            return
        for key, pick in (("ci_low", min), ("lower_bound", min), ("diff_ci_low", min), ("diff_lower_bound", min),
                          ("ci_high", max), ("diff_ci_high", max)):
            if entry.get(key) is not None and inner.get(key) is not None:
                entry[key] = pick(entry[key], inner[key])
        inner = entry
