"""`dynamics.history`: treatment-history columns are set exactly, whatever the normalisation."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.cohort import StateFeatureInfo
from clinical_mborl.dynamics.history import HistoryColumn, HistoryRule

FEATURES = [
    StateFeatureInfo(name="map", unit="mmHg", kind="measurement", transform="zscore", mean=70.0, std=12.0),
    StateFeatureInfo(name="fluid_prev", unit="mL", kind="treatment", transform="log_zscore", mean=3.1, std=2.9),
    StateFeatureInfo(name="fluid_total", unit="mL", kind="treatment", transform="log_zscore", mean=5.2, std=2.4),
    StateFeatureInfo(name="ne_prev", unit="ug/kg/min", kind="treatment", transform="zscore", mean=0.05, std=0.1),
]
RULE = HistoryRule([HistoryColumn(1, 0, "previous"), HistoryColumn(2, 0, "cumulative"),
                    HistoryColumn(3, 1, "previous")], FEATURES)


def _normalise(raw: np.ndarray) -> np.ndarray:
    out = raw.astype(np.float64).copy()
    for j, f in enumerate(FEATURES):
        x = np.log1p(out[:, j]) if f.transform == "log_zscore" else out[:, j]
        out[:, j] = (x - f.mean) / f.std
    return out


doses = st.tuples(st.floats(0.0, 4000.0), st.floats(0.0, 1.5))
states = st.tuples(st.floats(40.0, 120.0), st.floats(0.0, 4000.0), st.floats(0.0, 50_000.0), st.floats(0.0, 1.5))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(states, doses), min_size=1, max_size=8), st.integers(1, 3))
def test_previous_is_the_dose_and_cumulative_adds_it(rows, members) -> None:
    raw = np.array([s for s, _ in rows], dtype=np.float64)
    dose = np.array([d for _, d in rows], dtype=np.float64)
    z = torch.as_tensor(_normalise(raw), dtype=torch.float32)
    predicted = torch.randn(members, len(rows), 4)  # whatever the network said
    out = RULE.apply(z, predicted, torch.as_tensor(dose, dtype=torch.float32))
    expected = _normalise(np.column_stack([raw[:, 0], dose[:, 0], raw[:, 2] + dose[:, 0], dose[:, 1]]))
    for m in range(members):
        np.testing.assert_allclose(out[m, :, 1:].numpy(), expected[:, 1:], rtol=1e-4, atol=1e-4)
        # columns that are not history keep the network's prediction
        torch.testing.assert_close(out[m, :, 0], predicted[m, :, 0])


def test_negative_inputs_are_floored_and_spread_is_zeroed() -> None:
    z = torch.as_tensor(_normalise(np.array([[70.0, 0.0, 0.0, 0.0]])), dtype=torch.float32)
    z[0, 2] = -10.0  # a total below zero (e.g. a model state outside the data): floored at 0
    out = RULE.apply(z, torch.zeros(1, 4), torch.tensor([[-5.0, 0.2]]))
    expected = _normalise(np.array([[70.0, 0.0, 0.0, 0.2]]))
    np.testing.assert_allclose(out[0, 1:].numpy(), expected[0, 1:], rtol=1e-5, atol=1e-5)
    std = RULE.zero_spread(torch.ones(2, 1, 4))
    assert std[..., 1:].abs().sum() == 0 and torch.equal(std[..., 0], torch.ones(2, 1))


def test_config_round_trip_and_empty_rule() -> None:
    again = HistoryRule.from_config(RULE.to_config(), FEATURES)
    assert again.columns == RULE.columns
    empty = HistoryRule([], FEATURES)
    assert not empty and empty.to_config() == []
    t = torch.randn(2, 3, 4)
    assert empty.apply(t[0], t, torch.zeros(3, 2)) is t


def test_no_history_columns_on_a_cohort_without_treatment_features(toy) -> None:
    from clinical_mborl.dynamics.history import history_columns

    assert history_columns(toy.manifest) == []
