"""Dose levels: level 0 = exactly none, quantile/explicit edges, joint index round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_mborl.cohort.levels import bin_doses, dose_levels, doses_of_action, fit_dimension
from clinical_mborl.cohort.manifest import ActionDimensionInfo, ActionSpaceInfo
from clinical_mborl.cohort.spec import ActionDimensionSpec
from clinical_mborl.core.errors import InputError


def dim(**kw: object) -> ActionDimensionSpec:
    base = {"name": "d", "treatments": {"x": 1.0}, "aggregation": "amount_sum", "unit": "mL"}
    return ActionDimensionSpec.model_validate({**base, **kw})


def test_quantile_edges_medians_and_level_zero() -> None:
    doses = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    info = fit_dimension(dim(n_levels=5), doses)
    assert info.bin_edges == pytest.approx(np.quantile(doses[doses > 0], [0.25, 0.5, 0.75]).tolist())
    levels = dose_levels(info, doses)
    assert levels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert info.median_dose == [0.0, 1.5, 3.5, 5.5, 7.5]
    assert dose_levels(info, np.array([1e-12]))[0] == 1  # any non-zero dose is treated
    assert (info.dose_min, info.dose_max) == (0.0, 8.0)


def test_explicit_edges_with_empty_levels() -> None:
    info = fit_dimension(dim(binning="edges", edges=[10.0, 20.0]), np.array([0.0, 5.0, 30.0]))
    assert info.n_levels == 4 and info.median_dose == [0.0, 5.0, 15.0, 30.0]
    assert dose_levels(info, np.array([10.0, 10.5, 20.0, 1e6])).tolist() == [1, 2, 2, 3]


def test_quantile_binning_needs_treated_train_steps() -> None:
    with pytest.raises(InputError, match="no non-zero dose"):
        fit_dimension(dim(), np.zeros(5))


def test_continuous_dimension_records_its_range_only() -> None:
    info = fit_dimension(dim(binning="continuous"), np.array([0.0, 2.5]))
    assert info.n_levels is None and info.bin_edges is None and info.dose_max == 2.5


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(2, 6), min_size=1, max_size=3), data=st.data())
def test_joint_index_round_trip_and_binning_of_representative_doses(sizes: list[int], data: st.DataObject) -> None:
    dims = [ActionDimensionInfo(name=f"d{j}", unit="u", n_levels=n, bin_edges=[float(k) for k in range(1, n - 1)],
                                median_dose=[0.0] + [k + 0.5 for k in range(n - 1)]) for j, n in enumerate(sizes)]
    space = ActionSpaceInfo(kind="discrete", dimensions=dims)
    levels = np.array([[data.draw(st.integers(0, n - 1)) for n in sizes] for _ in range(5)])
    joint = space.joint_index(levels)
    assert ((joint >= 0) & (joint < space.n_actions)).all()
    np.testing.assert_array_equal(space.levels_of(joint), levels)
    np.testing.assert_array_equal(bin_doses(space, doses_of_action(space, joint)), joint)
    assert len(set(space.joint_index(np.array(np.meshgrid(*[range(n) for n in sizes])).reshape(len(sizes), -1).T))) \
        == space.n_actions


def test_bin_doses_checks_the_number_of_dimensions() -> None:
    space = ActionSpaceInfo(kind="discrete", dimensions=[
        ActionDimensionInfo(name="a", unit="u", n_levels=2, bin_edges=[], median_dose=[0.0, 1.0])])
    with pytest.raises(InputError, match="one per action dimension"):
        bin_doses(space, np.zeros((3, 2)))
