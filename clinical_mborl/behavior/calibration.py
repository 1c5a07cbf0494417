"""Calibration metrics of a behaviour estimate on held-out patients.

Discrete: negative log-likelihood of the logged level, expected calibration error of the top-1
confidence (equal-width bins; Guo et al., ICML 2017), reliability-curve data and top-1 agreement.
Continuous: NLL of the logged doses, and per dimension the calibration of P(dose > 0) and the
coverage of central 50%/90% intervals of the log-dose given treatment (from the PIT values).

Reliability bins carry row counts (transitions, not patients); the report stage applies the
small-cell rules before showing them.

>>> p = np.array([[0.8, 0.2], [0.6, 0.4]]); y = np.array([0, 1])
>>> round(expected_calibration_error(p, y, n_bins=10), 3)
0.4
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-12


def multiclass_nll(proba: np.ndarray, y: np.ndarray) -> float:
    """-mean log p(y_i | s_i)."""
    p = np.clip(proba[np.arange(y.shape[0]), y], EPS, 1.0)
    return float(-np.log(p).mean())


def _binned(conf: np.ndarray, hit: np.ndarray, n_bins: int) -> list[dict[str, Any]]:
    """Equal-width bins on [0, 1] of `conf`; per bin: count, mean confidence, observed rate."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = which == b
        count = int(sel.sum())
        out.append({
            "bin_lower": float(edges[b]),
            "bin_upper": float(edges[b + 1]),
            "count": count,
            "mean_confidence": float(conf[sel].mean()) if count else None,
            "observed": float(hit[sel].mean()) if count else None,
        })
    return out


def reliability_curve(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> list[dict[str, Any]]:
    """Top-1 reliability: per confidence bin, the mean confidence and the observed accuracy."""
    conf = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == y).astype(np.float64)
    return _binned(conf, hit, n_bins)


def _ece_from_bins(bins: list[dict[str, Any]]) -> float:
    n = sum(b["count"] for b in bins)
    if n == 0:
        return float("nan")
    return float(sum(b["count"] / n * abs(b["observed"] - b["mean_confidence"]) for b in bins if b["count"]))


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width confidence bins."""
    return _ece_from_bins(reliability_curve(proba, y, n_bins))


def top1_agreement(proba: np.ndarray, y: np.ndarray) -> float:
    """Share of rows where the most probable level is the clinician's logged level."""
    return float((proba.argmax(axis=1) == y).mean())


def discrete_calibration(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict[str, Any]:
    """All discrete metrics in one JSON-ready dict."""
    bins = reliability_curve(proba, y, n_bins)
    return {
        "n_rows": int(y.shape[0]),
        "nll": multiclass_nll(proba, y),
        "ece": _ece_from_bins(bins),
        "top1_agreement": top1_agreement(proba, y),
        "reliability": bins,
    }


def binary_reliability(p: np.ndarray, event: np.ndarray, n_bins: int = 15) -> list[dict[str, Any]]:
    """Reliability of a probability of an event: per bin of p, mean p and observed event rate."""
    return _binned(p, event.astype(np.float64), n_bins)


def continuous_calibration(
    log_density: np.ndarray,
    p_treated: np.ndarray,
    pit: np.ndarray,
    doses: np.ndarray,
    names: tuple[str, ...],
    n_bins: int = 15,
) -> dict[str, Any]:
    """Metrics of a zero-inflated dose density.

    Args:
        log_density: log pi(logged doses | s), [n].
        p_treated: predicted P(dose_j > 0 | s), [n, k].
        pit: predicted CDF of log-dose at the logged dose given treatment, [n, k] (used where dose > 0).
        doses: logged doses, [n, k].
        names: dose dimension names.
    """
    out: dict[str, Any] = {"n_rows": int(doses.shape[0]), "nll": float(-log_density.mean()), "dimensions": {}}
    for j, name in enumerate(names):
        treated = doses[:, j] > 0
        bins = binary_reliability(p_treated[:, j], treated, n_bins)
        u = pit[treated, j]
        out["dimensions"][name] = {
            "treated_rate": float(treated.mean()),
            "treated_ece": _ece_from_bins(bins),
            "treated_agreement": float(((p_treated[:, j] > 0.5) == treated).mean()),
            "treated_reliability": bins,
            "n_treated": int(treated.sum()),
            "coverage_50": float(((u >= 0.25) & (u <= 0.75)).mean()) if u.size else None,
            "coverage_90": float(((u >= 0.05) & (u <= 0.95)).mean()) if u.size else None,
        }
    return out
