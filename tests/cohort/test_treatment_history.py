"""Treatment-history state features: the spec's rules and the history function's invariants."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.cohort.features import charted_state_names, state_names
from clinical_mborl.cohort.spec import CohortSpec
from clinical_mborl.cohort.treatment_history import treatment_history
from clinical_mborl.core.errors import InputError

BASE = {
    "name": "t", "description": "d",
    "features": [{"name": "map_mmhg", "source": "map", "unit": "mmHg", "valid_range": [10, 250]}],
    "actions": [
        {"name": "iv_fluid_ml", "treatments": {"crystalloid": 1.0}, "aggregation": "amount_sum", "unit": "mL"},
        {"name": "ne_ug_kg_min", "treatments": {"norepinephrine": 1.0}, "aggregation": "max_rate",
         "unit": "ug/kg/min"},
    ],
}
HISTORY = [
    {"name": "fluid_previous_ml", "action": "iv_fluid_ml", "kind": "previous"},
    {"name": "fluid_total_ml", "action": "iv_fluid_ml", "kind": "cumulative"},
    {"name": "ne_previous", "action": "ne_ug_kg_min", "kind": "previous", "transform": "none"},
]


def spec_with(history: list[dict]) -> CohortSpec:
    return CohortSpec.model_validate({**BASE, "treatment_features": history})


def test_state_names_put_history_last() -> None:
    spec = spec_with(HISTORY)
    assert state_names(spec) == [*charted_state_names(spec), "fluid_previous_ml", "fluid_total_ml", "ne_previous"]


def test_spec_without_history_keeps_its_hash_and_dump() -> None:
    plain = CohortSpec.model_validate(BASE)
    assert "treatment_features" not in plain.model_dump(mode="json")
    assert plain.spec_hash() == spec_with([]).spec_hash() != spec_with(HISTORY).spec_hash()


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "x_ml", "action": "nope", "kind": "previous"}, "unknown action dimension"),
    ({"name": "x", "action": "ne_ug_kg_min", "kind": "cumulative"}, "needs an amount_sum dimension"),
    ({"name": "iv_fluid_ml", "action": "iv_fluid_ml", "kind": "previous"}, "taken by a dose column"),
    ({"name": "map_mmhg", "action": "iv_fluid_ml", "kind": "previous"}, "duplicate feature names"),
    ({"name": "Fluid", "action": "iv_fluid_ml", "kind": "previous"}, "snake_case"),
])
def test_bad_history_features_are_refused(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec_with([entry])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0, 5000, allow_nan=False), min_size=1, max_size=8), min_size=1, max_size=5),
       st.randoms(use_true_random=False))
def test_history_is_the_shifted_doses_and_their_running_sum(stays: list[list[float]], rnd) -> None:
    spec = spec_with(HISTORY)
    rows = [(s, k, dose, dose / 1000.0) for s, doses in enumerate(stays) for k, dose in enumerate(doses)]
    rnd.shuffle(rows)  # any row order
    doses = pl.DataFrame(rows, schema=["stay_idx", "step", "iv_fluid_ml", "ne_ug_kg_min"], orient="row")
    decisions = pl.DataFrame([(s, k) for s, d in enumerate(stays) for k in range(len(d) + 1)],
                             schema=["stay_idx", "step"], orient="row")
    got = treatment_history(spec, doses, decisions)
    expect_prev, expect_total, expect_ne = [], [], []
    for d in stays:
        for k in range(len(d) + 1):
            expect_prev.append(d[k - 1] if k else 0.0)
            expect_total.append(sum(d[:k]))
            expect_ne.append(d[k - 1] / 1000.0 if k else 0.0)
    assert got.columns == ["fluid_previous_ml", "fluid_total_ml", "ne_previous"]
    np.testing.assert_allclose(got["fluid_previous_ml"].to_numpy(), expect_prev)
    np.testing.assert_allclose(got["fluid_total_ml"].to_numpy(), expect_total, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got["ne_previous"].to_numpy(), expect_ne)


def test_history_never_reads_the_decisions_own_dose() -> None:
    spec = spec_with(HISTORY)
    doses = pl.DataFrame({"stay_idx": [0, 0, 0], "step": [0, 1, 2], "iv_fluid_ml": [100.0, 200.0, 300.0],
                          "ne_ug_kg_min": [0.0, 0.1, 0.2]})
    decisions = pl.DataFrame({"stay_idx": [0, 0, 0], "step": [0, 1, 2]})
    before = treatment_history(spec, doses, decisions)
    changed = doses.with_columns(pl.when(pl.col("step") == 2).then(9999.0).otherwise(pl.col("iv_fluid_ml"))
                                 .alias("iv_fluid_ml"))
    assert treatment_history(spec, changed, decisions).equals(before)


def test_a_gap_in_the_doses_is_an_error_naming_the_rows() -> None:
    spec = spec_with(HISTORY)
    doses = pl.DataFrame({"stay_idx": [0], "step": [0], "iv_fluid_ml": [1.0], "ne_ug_kg_min": [0.0]})
    decisions = pl.DataFrame({"stay_idx": [0, 0, 0], "step": [0, 1, 2]})
    with pytest.raises(InputError, match=r"decision row\(s\) \[2\]"):
        treatment_history(spec, doses, decisions)


def test_a_missing_middle_step_is_an_error_not_a_short_sum() -> None:
    spec = spec_with(HISTORY)
    doses = pl.DataFrame({"stay_idx": [0, 0], "step": [0, 2], "iv_fluid_ml": [1.0, 2.0], "ne_ug_kg_min": [0.0, 0.0]})
    decisions = pl.DataFrame({"stay_idx": [0], "step": [3]})
    with pytest.raises(InputError, match=r"rows \[1\]"):
        treatment_history(spec, doses, decisions)
