"""Calibration metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np

from clinical_mborl.behavior.calibration import (
    continuous_calibration,
    discrete_calibration,
    expected_calibration_error,
    multiclass_nll,
    reliability_curve,
    top1_agreement,
)

# four rows, three levels; top-1 confidences 0.7, 0.6, 0.65, 0.95
P = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.25, 0.1, 0.65], [0.95, 0.03, 0.02]])
Y = np.array([0, 0, 2, 0])  # hits: yes, no, yes, yes


def test_nll_and_agreement() -> None:
    expected = -(math.log(0.7) + math.log(0.3) + math.log(0.65) + math.log(0.95)) / 4
    assert math.isclose(multiclass_nll(P, Y), expected)
    assert top1_agreement(P, Y) == 0.75


def test_reliability_bins_and_ece() -> None:
    bins = reliability_curve(P, Y, n_bins=4)  # [0,.25] (.25,.5] (.5,.75] (.75,1]
    assert [b["count"] for b in bins] == [0, 0, 3, 1]
    third = bins[2]
    assert math.isclose(third["mean_confidence"], (0.7 + 0.6 + 0.65) / 3)
    assert math.isclose(third["observed"], 2 / 3)
    assert bins[0]["mean_confidence"] is None
    expected = 3 / 4 * abs(2 / 3 - 0.65) + 1 / 4 * abs(1.0 - 0.95)
    assert math.isclose(expected_calibration_error(P, Y, n_bins=4), expected)
    report = discrete_calibration(P, Y, n_bins=4)
    assert report["n_rows"] == 4 and math.isclose(report["ece"], expected)


def test_perfectly_calibrated_ece_is_zero() -> None:
    p = np.array([[0.5, 0.5]] * 4)
    y = np.array([0, 1, 0, 1])  # argmax is 0 everywhere: accuracy 0.5 == confidence 0.5
    assert expected_calibration_error(p, y, n_bins=10) == 0.0


def test_continuous_report_known_case() -> None:
    doses = np.array([[0.0], [2.0], [3.0], [0.0]])
    p_treated = np.array([[0.2], [0.9], [0.6], [0.4]])
    pit = np.array([[0.5], [0.5], [0.93], [0.1]])  # only rows with dose > 0 count
    out = continuous_calibration(np.array([-1.0, -2.0, -3.0, -2.0]), p_treated, pit, doses, ("d",), n_bins=2)
    dim = out["dimensions"]["d"]
    assert out["nll"] == 2.0
    assert dim["treated_rate"] == 0.5 and dim["n_treated"] == 2
    assert dim["coverage_50"] == 0.5 and dim["coverage_90"] == 1.0
    assert dim["treated_agreement"] == 1.0  # 0.2->no, 0.9->yes, 0.6->yes, 0.4->no
    # bins [0,.5]: p .2,.4, no events -> |0 - .3|; (.5,1]: p .9,.6, both events -> |1 - .75|
    assert math.isclose(dim["treated_ece"], 0.5 * 0.3 + 0.5 * 0.25)
